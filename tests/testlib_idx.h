// A tiny labelled image set in IDX files, for tests that train a U-Net without Fashion-MNIST.
#ifndef DIFFCL_TESTS_TESTLIB_IDX_H
#define DIFFCL_TESTS_TESTLIB_IDX_H

#include <stdint.h>
#include <stdio.h>

#include "diffcl/rng.h" // dcl_rng_uniform_at

static inline void check_put_be32(FILE *f, uint32_t v) {
    unsigned char b[4] = {(unsigned char)(v >> 24), (unsigned char)(v >> 16),
                          (unsigned char)(v >> 8), (unsigned char)v};
    fwrite(b, 1, 4, f);
}

// Writes dir/images.idx and dir/labels.idx: n images of side × side where class k (i mod
// classes) is a bright band in rows 3k..3k+2 on noise; spec receives the dataset spec
// ("idx:IMAGES,LABELS,classes=K"). Returns 0 when the files cannot be written.
static inline int check_write_idx(const char *dir, int n, int side, int classes, char *spec,
                                  size_t size) {
    char images[512], labels[512];
    if (snprintf(images, sizeof images, "%s/images.idx", dir) >= (int)sizeof images ||
        snprintf(labels, sizeof labels, "%s/labels.idx", dir) >= (int)sizeof labels)
        return 0;
    FILE *fi = fopen(images, "wb"), *fl = fopen(labels, "wb");
    if (!fi || !fl) {
        if (fi) fclose(fi);
        if (fl) fclose(fl);
        return 0;
    }
    check_put_be32(fi, 0x803), check_put_be32(fi, (uint32_t)n);
    check_put_be32(fi, (uint32_t)side), check_put_be32(fi, (uint32_t)side);
    check_put_be32(fl, 0x801), check_put_be32(fl, (uint32_t)n);
    for (int i = 0; i < n; i++) {
        int k = i % classes;
        fputc(k, fl);
        for (int p = 0; p < side * side; p++) {
            double u = dcl_rng_uniform_at(3, DCL_RNG_TEST, 0,
                                          (uint64_t)i * (uint64_t)(side * side) + (uint64_t)p);
            int row = p / side, noise = (int)(60 * u);
            fputc(row / 3 == k ? 200 + noise / 2 : noise, fi);
        }
    }
    int ok = fclose(fi) == 0;
    ok = fclose(fl) == 0 && ok;
    return ok && snprintf(spec, size, "idx:%s,%s,classes=%d", images, labels, classes) < (int)size;
}

#endif
