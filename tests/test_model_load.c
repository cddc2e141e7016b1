// Checkpoints that lie: a config that does not match the tensors (width 20000 in a small file) is
// refused before the network is built, naming the file; U-Net config errors name the file;
// config integers that would wrap (2^32 + 128) and bad seeds are refused; NaN and Inf weights are
// refused naming the file and the tensor; a network too large for one buffer is a usage error.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/model.h"
#include "diffcl/safetensors.h" // dcl_safetensors_*: crafting checkpoints

static char tmpdir[256];
static dcl_device *cpu;

// Replaces the first `from` in text by `to` (a malloc'ed copy).
static char *replace(const char *text, const char *from, const char *to) {
    const char *at = strstr(text, from);
    CHECK(at != NULL);
    if (!at) return NULL;
    size_t n = strlen(text) + strlen(to) + 1;
    char *out = malloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    return out;
}

// Writes src's tensors to path with its config edited (from → to) and, when poison >= 0, the
// value `bad` at element 3 of tensor `poison`.
static void craft(const char *src, const char *path, const char *from, const char *to, int poison,
                  float bad) {
    dcl_st_file *f;
    CHECK_EQ(dcl_safetensors_read(&f, src), DCL_OK);
    int n = dcl_safetensors_count(f);
    dcl_st_tensor *t = calloc((size_t)n, sizeof *t);
    float *copy = NULL;
    for (int i = 0; i < n; i++) {
        t[i] = *dcl_safetensors_tensor(f, i);
        if (i == poison) {
            size_t k = (size_t)dcl_st_tensor_numel(&t[i]);
            copy = malloc(k * sizeof *copy);
            memcpy(copy, t[i].data, k * sizeof *copy);
            copy[3 % k] = bad;
            t[i].data = copy;
        }
    }
    char *cfg = from ? replace(dcl_safetensors_meta(f, "diffcl"), from, to)
                     : strdup(dcl_safetensors_meta(f, "diffcl"));
    const char *meta[] = {"format", "pt", "diffcl", cfg};
    CHECK_EQ(dcl_safetensors_write(path, t, n, meta, 2), DCL_OK);
    free(cfg), free(copy), free(t);
    dcl_safetensors_free(f);
}

// Loading path fails with want and a message holding every word of `words` (NULL-terminated).
static void load_fails(const char *path, dcl_status want, const char *w1, const char *w2) {
    dcl_model m;
    dcl_clear_error();
    dcl_status s = dcl_model_load(&m, cpu, path, 16);
    const char *msg = dcl_last_error();
    int ok = s == want && (!w1 || strstr(msg, w1)) && (!w2 || strstr(msg, w2));
    if (!ok)
        fprintf(stderr, "%s: got %s \"%s\", want %s with '%s' '%s'\n", path, dcl_status_name(s),
                msg, dcl_status_name(want), w1 ? w1 : "", w2 ? w2 : "");
    CHECK(ok);
    if (s == DCL_OK) dcl_model_free(&m);
}

static void save_model(const dcl_model_config *c, const char *path) {
    dcl_model m;
    CHECK_EQ(dcl_model_init(&m, cpu, c, 16), DCL_OK);
    CHECK_EQ(dcl_model_save(&m, path), DCL_OK);
    dcl_model_free(&m);
    dcl_model m2;
    CHECK_EQ(dcl_model_load(&m2, cpu, path, 16), DCL_OK);
    dcl_model_free(&m2);
}

static void test_mlp(void) {
    char base[400], p[400];
    dcl_model_config c;
    dcl_model_config_default(&c);
    c.net.mlp.width = 16, c.net.mlp.depth = 2;
    snprintf(base, sizeof base, "%s/mlp.safetensors", tmpdir);
    save_model(&c, base);
    snprintf(p, sizeof p, "%s/wide.safetensors", tmpdir);
    // 20000 wide and 8 deep is 2.8 G parameters: refused from the file's size alone.
    craft(base, p, "\"width\":16,\"depth\":2", "\"width\":20000,\"depth\":8", -1, 0);
    load_fails(p, DCL_ERR_FORMAT, "wide.safetensors", "does not match");
    // Integers that would wrap through an int.
    craft(base, p, "\"width\":16", "\"width\":4294967312", -1, 0);
    load_fails(p, DCL_ERR_FORMAT, "wide.safetensors", "out of range");
    craft(base, p, "\"version\":1", "\"version\":4294967297", -1, 0);
    load_fails(p, DCL_ERR_FORMAT, "wide.safetensors", "version");
    const char *seeds[] = {"\"-1\"", "\"99999999999999999999999\"", "\" 5\"", "\"+5\""};
    for (int i = 0; i < 4; i++) {
        char to[64];
        snprintf(to, sizeof to, "\"seed\":%s", seeds[i]);
        craft(base, p, "\"seed\":\"0\"", to, -1, 0);
        load_fails(p, DCL_ERR_FORMAT, "wide.safetensors", "seed");
    }
    // NaN and Inf weights, in the weights and in the EMA copy.
    float bad[3] = {NAN, INFINITY, -INFINITY};
    for (int v = 0; v < 3; v++) {
        snprintf(p, sizeof p, "%s/poison.safetensors", tmpdir);
        craft(base, p, NULL, NULL, v, bad[v]);
        load_fails(p, DCL_ERR_FORMAT, "poison.safetensors", "non-finite");
        dcl_st_file *f;
        CHECK_EQ(dcl_safetensors_read(&f, p), DCL_OK);
        load_fails(p, DCL_ERR_FORMAT, dcl_safetensors_tensor(f, v)->name, NULL);
        dcl_safetensors_free(f);
    }
    // Too large for one buffer of the device: a usage error saying what fits, nothing allocated.
    dcl_model m;
    c.net.mlp.width = 65536, c.net.mlp.depth = 3;
    dcl_status s = dcl_model_init(&m, cpu, &c, 16);
    if (dcl_device_get_info(cpu)->max_alloc < (uint64_t)4 * 2 * 65536 * 65536) {
        CHECK_EQ(s, DCL_ERR_ARG);
        CHECK(strstr(dcl_last_error(), "parameters") && strstr(dcl_last_error(), "--width"));
    }
    if (s == DCL_OK) dcl_model_free(&m);
}

static void test_unet(void) {
    char base[400], p[400];
    dcl_model_config c;
    dcl_model_config_default(&c);
    c.net.kind = DCL_NET_UNET;
    dcl_unet_config_default(&c.net.unet, 1, 8, 8);
    c.net.unet.base = 8, c.net.unet.levels = 2, c.net.unet.groups = 4;
    snprintf(base, sizeof base, "%s/unet.safetensors", tmpdir);
    save_model(&c, base);
    snprintf(p, sizeof p, "%s/unet_bad.safetensors", tmpdir);
    // Groups that do not divide the channels: a format error of the file, not a usage error.
    craft(base, p, "\"groups\":4", "\"groups\":3", -1, 0);
    load_fails(p, DCL_ERR_FORMAT, "unet_bad.safetensors", "groups");
    craft(base, p, "\"height\":8,\"width\":8", "\"height\":1,\"width\":1", -1, 0);
    load_fails(p, DCL_ERR_FORMAT, "unet_bad.safetensors", "divisible");
    craft(base, p, "\"base\":8", "\"base\":4096", -1, 0);
    load_fails(p, DCL_ERR_FORMAT, "unet_bad.safetensors", "does not match");
    craft(base, p, "\"base\":8", "\"base\":4294967304", -1, 0);
    load_fails(p, DCL_ERR_FORMAT, "unet_bad.safetensors", "out of range");
    craft(base, p, NULL, NULL, 2, NAN);
    load_fails(p, DCL_ERR_FORMAT, "unet_bad.safetensors", "non-finite");
}

int main(void) {
    if (!check_tmpdir(tmpdir, sizeof tmpdir, "diffcl-modelload")) return 1;
    CHECK_EQ(dcl_device_open(&cpu, "cpu"), DCL_OK);
    test_mlp();
    test_unet();
    dcl_device_free(cpu);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    return check_exit();
}
