// `diffcl data`: writes the points of a dataset as CSV, or their scatter plot as PNG (a grid of
// its images for an image set), or an image set as a folder of PNGs, so a dataset spec can be
// looked at before training on it.
#define _POSIX_C_SOURCE 200809L // mkdir, access

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "core/error.h"   // dcl__fail
#include "diffcl/data.h"  // dcl_dataset_*, dcl_csv_write
#include "diffcl/image.h" // dcl_image_grid_write
#include "diffcl/log.h"   // dcl_log
#include "diffcl/plot.h"  // dcl_plot_scatter, dcl_png_write_rgb

#define DEFAULT_N 10000
// An image set's grid: GRID_COLS columns, at most GRID_MAX_ROWS rows; the first DEFAULT_IMAGES
// images when unlabelled.
#define GRID_COLS 10
#define GRID_MAX_ROWS 100
#define DEFAULT_IMAGES 100

const cli_command cli_data_command = {
    .name = "data",
    .summary = "write a dataset's points as CSV, their scatter plot or a grid of images as PNG",
    .usage = "diffcl data --data SPEC --out FILE.csv|FILE.png|FOLDER/ [--n N] [--seed N]",
    .details =
        "Draws points of a dataset the way training sees them and writes them to --out: a CSV\n"
        "(header x0,x1,... then one row per point) or a PNG scatter plot, chosen by the file's\n"
        "extension. Built-in 2D sets: spiral, moons, checkerboard, gmm8, annulus, swissroll.\n"
        "Options follow a colon: n=N fixes a training set of N points drawn once from the seed\n"
        "(spiral:n=40, as in the tutorial's figure 6), noise=STD sets the noise. csv:PATH reads\n"
        "points from a CSV file (header optional). A fresh set gives --n points (the first\n"
        "training batch of that size); a fixed set or a CSV gives all of its points.\n"
        "Image sets (fashion-mnist[:split=test], idx:IMAGES[,LABELS], png:FOLDER; option n=K\n"
        "keeps K images drawn from the seed) give a PNG grid: for a labelled set one row per\n"
        "class (its first 10 images, the class name on the left), otherwise the first --n\n"
        "images (default 100) in rows of 10. As CSV they give one row of C*H*W values in\n"
        "[-1, 1] per image. shapes32 (shapesS, S = 16..256; option n=K, default 10000) is a\n"
        "built-in set of labelled colour images: disc, square, triangle, ring, cross.\n"
        "--out FOLDER/ (a name ending in '/', a new or empty folder) writes each image of an\n"
        "image set (the first --n when given) as an 8-bit RGB PNG, FOLDER/NNNNN.png, or for a\n"
        "labelled set FOLDER/K_CLASS/NNNNN.png (K the label, so png:FOLDER reads the classes\n"
        "back in the same order).\n",
    .examples = "  diffcl data --data spiral --out spiral.png\n"
                "  diffcl data --data spiral:n=40 --seed 3 --out spiral40.csv\n"
                "  diffcl data --data moons:noise=0.1 --n 2000 --out moons.png\n"
                "  diffcl data --data csv:points.csv --out points.png\n"
                "  diffcl data --data fashion-mnist --out fashion.png\n"
                "  diffcl data --data shapes32 --out shapes.png\n"
                "  diffcl data --data shapes64:n=500 --out shapes64/\n"
                "  diffcl data --data png:faces,n=64 --n 64 --out faces.png\n",
    .no_device = 1, // datasets are made on the host
};

// ".csv" -> 'c', ".png" -> 'p', a trailing '/' -> 'd' (a folder of PNGs), anything else 0 (any
// case).
static int output_kind(const char *path) {
    size_t len = strlen(path);
    if (len && path[len - 1] == '/') return 'd';
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    if (strcasecmp(dot, ".csv") == 0) return 'c';
    if (strcasecmp(dot, ".png") == 0) return 'p';
    return 0;
}

// The grid of an image set: one row per class (its first GRID_COLS images, white where a class has
// fewer) when labelled, else the first n (default DEFAULT_IMAGES) images.
static dcl_status write_grid(dcl_dataset *ds, const char *out, uint64_t n) {
    int C, H, W;
    dcl_dataset_image_shape(ds, &C, &H, &W);
    size_t D = (size_t)C * H * W, size = dcl_dataset_size(ds);
    const float *x = dcl_dataset_points(ds);
    const int32_t *labels = dcl_dataset_labels(ds);
    int classes = dcl_dataset_num_classes(ds);
    int scale = H <= 32 && W <= 32 ? 2 : 1;
    if (!labels || classes > GRID_MAX_ROWS) {
        size_t count = n ? (size_t)n : DEFAULT_IMAGES;
        if (count > size) count = size;
        if (count > (size_t)GRID_COLS * GRID_MAX_ROWS) count = (size_t)GRID_COLS * GRID_MAX_ROWS;
        dcl_status s = dcl_image_grid_write(out, x, count, C, H, W, GRID_COLS, 2, scale, NULL, 0);
        if (s == DCL_OK)
            dcl_log(DCL_LOG_INFO, "wrote a grid of the first %zu of %zu images of %s to %s", count,
                    size, dcl_dataset_spec(ds), out);
        return s;
    }
    size_t cells = (size_t)classes * GRID_COLS;
    float *grid = malloc(cells * D * sizeof *grid);
    const char **names = malloc((size_t)classes * sizeof *names);
    int *filled = calloc((size_t)classes, sizeof *filled);
    dcl_status s = DCL_OK;
    if (!grid || !names || !filled) {
        s = DCL_ERR_NOMEM;
    } else {
        for (size_t i = 0; i < cells * D; i++) grid[i] = 1.0f; // white: no image
        for (size_t i = 0; i < size; i++) {
            int k = labels[i];
            if (filled[k] == GRID_COLS) continue;
            memcpy(grid + ((size_t)k * GRID_COLS + (size_t)filled[k]++) * D, x + i * D,
                   D * sizeof *x);
        }
        for (int k = 0; k < classes; k++) names[k] = dcl_dataset_class_name(ds, k);
        s = dcl_image_grid_write(out, grid, cells, C, H, W, GRID_COLS, 2, scale, names, classes);
    }
    if (s == DCL_OK)
        dcl_log(DCL_LOG_INFO, "wrote the first images of each of the %d classes of %s to %s",
                classes, dcl_dataset_spec(ds), out);
    free(grid);
    free(names);
    free(filled);
    return s;
}

// The folder of --out FOLDER/ (trailing slashes dropped into dir) must be new, with a writable
// parent, or empty and writable: checked before the dataset is opened.
static dcl_status check_folder(const char *out, char *dir, size_t size) {
    size_t len = strlen(out);
    while (len > 1 && out[len - 1] == '/') len--;
    if (len >= size) return dcl__fail(DCL_ERR_ARG, "--out %s: name too long", out);
    memcpy(dir, out, len);
    dir[len] = '\0';
    struct stat st;
    if (stat(dir, &st) != 0) return cli_check_output("--out", dir); // a new folder
    if (!S_ISDIR(st.st_mode))
        return dcl__fail(DCL_ERR_IO, "--out %s: %s is not a folder", out, dir);
    if (access(dir, W_OK | X_OK) != 0)
        return dcl__fail(DCL_ERR_IO, "--out %s: the folder is not writable (%s)", out,
                         strerror(errno));
    DIR *d = opendir(dir);
    if (!d)
        return dcl__fail(DCL_ERR_IO, "--out %s: cannot read the folder (%s)", out, strerror(errno));
    struct dirent *e;
    int empty = 1;
    while (empty && (e = readdir(d)))
        empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    if (!empty)
        return dcl__fail(DCL_ERR_IO, "--out %s: the folder holds files; give a new or empty folder",
                         out);
    return DCL_OK;
}

static dcl_status make_folder(const char *path) {
    if (mkdir(path, 0777) == 0 || errno == EEXIST) return DCL_OK;
    return dcl__fail(DCL_ERR_IO, "cannot create the folder %s: %s", path, strerror(errno));
}

static dcl_status too_long(const char *dir) {
    return dcl__fail(DCL_ERR_ARG, "--out %s/: the folder's name is too long", dir);
}

// v = p / 127.5 - 1 back to the byte p (clamped, NaN as 0).
static unsigned char pixel_byte(float v) {
    double p = ((double)v + 1.0) * 127.5 + 0.5;
    if (!(p >= 1.0)) return 0;
    return p >= 255.0 ? 255 : (unsigned char)p;
}

// Writes the first count images of ds as 8-bit RGB PNGs in dir: dir/NNNNN.png, or
// dir/K_CLASS/NNNNN.png for a labelled set (CLASS with characters other than letters, digits,
// '.', '-', '+' as '_'; NNNNN the image's index, at least 5 digits, all of one width).
static dcl_status write_folder(dcl_dataset *ds, const char *dir, size_t count) {
    int C, H, W, classes = dcl_dataset_num_classes(ds);
    dcl_dataset_image_shape(ds, &C, &H, &W);
    const float *x = dcl_dataset_points(ds);
    const int32_t *labels = dcl_dataset_labels(ds);
    size_t HW = (size_t)H * W, D = (size_t)C * HW;
    int digits = 5, kdigits = 1;
    for (size_t m = count ? count - 1 : 0; m >= 100000; m /= 10) digits++;
    for (int m = classes - 1; m >= 10; m /= 10) kdigits++;
    unsigned char *rgb = malloc(HW * 3);
    char path[4096], sub[512];
    dcl_status s = rgb ? make_folder(dir) : dcl__fail(DCL_ERR_NOMEM, "out of memory");
    for (size_t i = 0; s == DCL_OK && i < count; i++) {
        const float *img = x + i * D; // (C, H, W)
        for (size_t p = 0; p < HW; p++)
            for (int c = 0; c < 3; c++) rgb[p * 3 + c] = pixel_byte(img[(C == 3 ? c : 0) * HW + p]);
        if (labels) {
            const char *name = dcl_dataset_class_name(ds, labels[i]);
            int n =
                snprintf(sub, sizeof sub, "%0*d_%.400s", kdigits, (int)labels[i], name ? name : "");
            for (int j = kdigits + 1; j < n; j++) {
                char ch = sub[j];
                int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                         (ch >= '0' && ch <= '9') || ch == '.' || ch == '-' || ch == '+';
                if (!ok) sub[j] = '_';
            }
            int m = snprintf(path, sizeof path, "%s/%s", dir, sub);
            s = m > 0 && (size_t)m < sizeof path ? make_folder(path) : too_long(dir);
            m = snprintf(path, sizeof path, "%s/%s/%0*zu.png", dir, sub, digits, i);
            if (s == DCL_OK && !(m > 0 && (size_t)m < sizeof path)) s = too_long(dir);
        } else {
            int m = snprintf(path, sizeof path, "%s/%0*zu.png", dir, digits, i);
            if (!(m > 0 && (size_t)m < sizeof path)) s = too_long(dir);
        }
        if (s == DCL_OK) s = dcl_png_write_rgb(path, rgb, W, H);
        if (cli_signal_pending() && s == DCL_OK)
            s = dcl__fail(DCL_ERR_CANCELLED, "stopped by a signal after %zu of %zu images", i + 1,
                          count);
    }
    free(rgb);
    if (s == DCL_OK)
        dcl_log(DCL_LOG_INFO, "wrote %zu images of %s (%dx%d, %s) to %s/", count,
                dcl_dataset_spec(ds), W, H, labels ? "one folder per class" : "unlabelled", dir);
    return s;
}

int cli_cmd_data(int argc, char **argv) {
    const char *spec = NULL, *out = NULL;
    uint64_t n = 0, seed = 0;
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"data", 'd', CLI_OPT_STRING, (void *)&spec, "SPEC",
         "dataset: spiral, moons, ..., csv:PATH, fashion-mnist, idx:IMAGES, png:DIR, shapes32",
         NULL, 0, 0},
        {"out", 'o', CLI_OPT_STRING, (void *)&out, "FILE",
         "output: FILE.csv (points), FILE.png (scatter plot or image grid), FOLDER/ (images)", NULL,
         0, 0},
        {"n", 'n', CLI_OPT_U64, &n, "N",
         "points of a fresh set; images in an unlabelled grid (100) or in FOLDER/ (all)", "10000",
         1, DCL_CSV_MAX_ROWS},
        {"seed", 's', CLI_OPT_U64, &seed, "N", "seed of the dataset's random numbers", "0", 0,
         UINT64_MAX},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_data_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    if (!spec) return cli_usage_error("data", "--data SPEC is required (e.g. --data spiral)");
    if (!out) return cli_usage_error("data", "--out FILE.csv or --out FILE.png is required");
    int kind = output_kind(out);
    if (!kind)
        return cli_usage_error("data",
                               "--out must end in .csv (points), .png (plot) or / (a folder of "
                               "PNG images), got '%s'",
                               out);

    dcl_dataset *ds = NULL;
    char dir[4096];
    dcl_status s =
        kind == 'd' ? check_folder(out, dir, sizeof dir) : cli_check_output("--out", out);
    if (s == DCL_OK) s = dcl_dataset_open(&ds, spec, seed);
    if (s != DCL_OK) return cli_report(s);
    if (kind == 'd') {
        if (!dcl_dataset_image_shape(ds, NULL, NULL, NULL)) {
            dcl_dataset_free(ds);
            return cli_usage_error("data",
                                   "--out %s writes images; '%s' holds points (write them as .csv "
                                   "or .png)",
                                   out, spec);
        }
        size_t count = dcl_dataset_size(ds);
        if (n && n < count) count = (size_t)n;
        s = write_folder(ds, dir, count);
        dcl_dataset_free(ds);
        if (s == DCL_ERR_CANCELLED) return cli_signal_exit_code();
        return s == DCL_OK ? CLI_EXIT_OK : cli_report(s);
    }
    if (kind == 'p' && dcl_dataset_image_shape(ds, NULL, NULL, NULL)) {
        s = write_grid(ds, out, n);
        dcl_dataset_free(ds);
        return s == DCL_OK ? CLI_EXIT_OK : cli_report(s);
    }
    size_t D = dcl_dataset_dim(ds), count = dcl_dataset_size(ds);
    const float *points = dcl_dataset_points(ds);
    float *fresh = NULL;
    if (!points) {
        count = n ? (size_t)n : DEFAULT_N;
        fresh = malloc(count * D * sizeof *fresh);
        if (!fresh) s = DCL_ERR_NOMEM;
        else s = dcl_dataset_batch(ds, fresh, count, 0);
        points = fresh;
    } else if (n) {
        dcl_log(DCL_LOG_INFO, "--n %llu is not used: '%s' is a fixed set of %zu points",
                (unsigned long long)n, spec, count);
    }
    if (s == DCL_OK && kind == 'c') {
        s = dcl_csv_write(out, points, count, D);
    } else if (s == DCL_OK) {
        if (D != 2) {
            dcl_dataset_free(ds);
            free(fresh);
            return cli_usage_error("data",
                                   "a PNG scatter plot needs 2D points; '%s' has %zu columns "
                                   "(write it as .csv instead)",
                                   spec, D);
        }
        char title[128];
        snprintf(title, sizeof title, "%s, seed %llu", spec, (unsigned long long)seed);
        s = dcl_plot_scatter(out, title, points, count, NULL, 0);
    }
    if (s == DCL_OK)
        dcl_log(DCL_LOG_INFO, "wrote %zu points of %s (seed %llu) to %s", count, spec,
                (unsigned long long)seed, out);
    dcl_dataset_free(ds);
    free(fresh);
    return s == DCL_OK ? CLI_EXIT_OK : cli_report(s);
}
