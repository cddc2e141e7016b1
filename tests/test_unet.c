// The U-Net (host/nn/unet.c): parameter layout, names, shapes, counts and FLOPs (also with
// several ResBlocks per level and attention blocks, at 32×32 and 64×64, and the memory estimate);
// finite-difference gradients of the whole network, with and without attention, on the CPU
// reference; batch chunking of the convolutions; and
// forward + backward on every usable OpenCL device against the CPU from the same seed. Exit 77
// only when the build has OpenCL but the machine has no OpenCL platform.
// Throughput is a benchmark, not a test: `diffcl bench unet`.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "testlib_net.h" // struct data, struct net, net_forward, net_loss, read_arena, normwise
#include "diffcl/device.h"
#include "diffcl/ops.h"
#include "diffcl/rng.h" // dcl_rng_*_at: perturbed parameters
#include "diffcl/unet.h"

// The tiny configuration of the gradient check.
static const dcl_unet_config tiny = {.channels = 1,
                                     .height = 8,
                                     .width = 8,
                                     .base = 4,
                                     .levels = 2,
                                     .mult = {1, 2},
                                     .groups = 2,
                                     .emb_dim = 4,
                                     .num_classes = 3};

// The harness's problem (testlib_net.h) for C×H×W images: x (N, C, H, W), labels 0, 1, ... (mod
// K + 1) ending with the null class K.
static int unet_data_init(struct data *d, const dcl_unet_config *c, size_t N, uint64_t seed) {
    return data_init(d, N, (size_t)c->channels * c->height * c->width, c->num_classes, seed);
}

// The harness's model for a U-Net configuration.
static int unet_init(struct net *n, const char *spec, const dcl_unet_config *cfg, uint64_t seed,
                     const struct data *d, size_t max_batch) {
    dcl_net_config c = {.kind = DCL_NET_UNET, .unet = *cfg};
    return net_init(n, spec, &c, seed, d, max_batch);
}

// Moves the parameters away from the initialisation, identically on every device: conv_out's zero
// weights would make every other gradient zero (and an attention block's zero proj its block's),
// and GroupNorm's 1 and 0 hide its affine part. conv_out and proj ~ U(−0.3, 0.3), norm weights
// 1 + 0.2·N(0, 1), norm biases 0.2·N(0, 1).
static void perturb(dcl_unet *u) {
    dcl_arena *p = dcl_unet_params(u);
    float *w = read_arena(p);
    if (!w) return;
    for (int k = 0; k < p->count; k++) {
        const char *name = p->views[k].name;
        int out = strncmp(name, "conv_out.", 9) == 0 || strstr(name, ".proj.") != NULL;
        int norm = strstr(name, "norm") != NULL;
        int weight = strstr(name, ".weight") != NULL;
        for (size_t j = 0; j < p->views[k].n; j++) {
            float *v = &w[p->views[k].off + j];
            if (out) *v = 0.6f * dcl_rng_uniform_at(5, DCL_RNG_TEST, (uint32_t)k, j) - 0.3f;
            if (norm)
                *v = (weight ? 1.0f : 0.0f) +
                     0.2f * dcl_rng_normal_at(5, DCL_RNG_TEST, (uint32_t)k, j);
        }
    }
    CHECK(dcl_buffer_write(p->buf, 0, p->n, w) == DCL_OK);
    free(w);
}

// ---- layout ------------------------------------------------------------------------------------

// Hand count for `tiny` (T = 4·base = 16; "k" = 3×3 conv, counts are weights + biases):
//   time_mlp.0 16·4+16 = 80, time_mlp.2 16·16+16 = 272, class_emb 4·16 = 64, conv_in 4·9+4 = 40,
//   down.0.res (4→4) norms 8+8, conv1 148, emb 68, conv2 148 = 380; down.0.downsample 148;
//   down.1.res (4→8) norm1 8, conv1 296, emb 136, norm2 16, conv2 584, skip 40 = 1080;
//   mid.res (8→8) 16+584+136+16+584 = 1336; up.1.res (16→8) norm1 32, conv1 1160, emb 136,
//   norm2 16, conv2 584, skip 136 = 2064; up.1.upsample 584; up.0.res (12→4) norm1 24, conv1 436,
//   emb 68, norm2 8, conv2 148, skip 52 = 736; norm_out 8; conv_out 37. Total 6829.
// Multiply-adds per image (R = 64 at 8×8, 16 at 4×4): time 64+256; conv_in 2304; down.0 9216·2
//   + 64; downsample 2304; down.1 4608+9216+512+128; mid 9216·2+128; up.1 18432+9216+2048+128;
//   up.1.upsample 36864; up.0 27648+9216+3072+64; conv_out 2304. Total 165440, FLOPs 330880.
#define TINY_PARAMS 6829
#define TINY_FLOPS 330880.0

static void check_layout(void) {
    dcl_device *dev;
    if (dcl_device_open(&dev, "cpu") != DCL_OK) {
        fprintf(stderr, "cannot open cpu: %s\n", dcl_last_error());
        check_failures++;
        return;
    }
    dcl_unet *u;
    CHECK(dcl_unet_init(&u, dev, &tiny, 1, 4) == DCL_OK);
    if (!u) {
        dcl_device_free(dev);
        return;
    }
    const dcl_arena *p = dcl_unet_params(u);
    size_t total = 0;
    for (int i = 0; i < p->count; i++) total += p->views[i].n;
    CHECK_EQ(total, TINY_PARAMS);
    CHECK_NEAR(dcl_unet_flops(&tiny), TINY_FLOPS, 0, 0);
    CHECK_EQ(dcl_unet_grads(u)->count, p->count);

    // Names and PyTorch shapes of a few views, and element counts of all.
    static const struct {
        const char *name;
        int ndim;
        uint64_t shape[4];
    } want[] = {
        {"time_mlp.0.weight", 2, {16, 4}},
        {"time_mlp.2.bias", 1, {16}},
        {"class_emb.weight", 2, {4, 16}},
        {"conv_in.weight", 4, {4, 1, 3, 3}},
        {"down.0.res.norm1.weight", 1, {4}},
        {"down.0.res.emb.weight", 2, {4, 16}},
        {"down.0.downsample.weight", 4, {4, 4, 3, 3}},
        {"down.1.res.skip.weight", 4, {8, 4, 1, 1}},
        {"mid.res.conv2.weight", 4, {8, 8, 3, 3}},
        {"up.1.res.conv1.weight", 4, {8, 16, 3, 3}},
        {"up.1.res.skip.bias", 1, {8}},
        {"up.1.upsample.weight", 4, {8, 8, 3, 3}},
        {"up.0.res.norm1.bias", 1, {12}},
        {"norm_out.weight", 1, {4}},
        {"conv_out.weight", 4, {1, 4, 3, 3}},
        {"conv_out.bias", 1, {1}},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int k = dcl_arena_find(p, want[i].name);
        uint64_t shape[4] = {0, 0, 0, 0};
        if (k < 0) {
            fprintf(stderr, "missing view %s\n", want[i].name);
            check_failures++;
            continue;
        }
        CHECK_EQ(dcl_unet_tensor_shape(u, k, shape), want[i].ndim);
        for (int d = 0; d < want[i].ndim; d++) CHECK_EQ(shape[d], want[i].shape[d]);
    }
    CHECK_EQ(dcl_arena_find(p, "down.0.res.skip.weight"), -1); // 4 → 4: identity
    CHECK_EQ(dcl_arena_find(p, "down.1.downsample.weight"), -1);
    CHECK_EQ(dcl_arena_find(p, "up.0.upsample.weight"), -1);
    CHECK_EQ(strcmp(p->views[0].name, "time_mlp.0.weight"), 0);
    CHECK_EQ(strcmp(p->views[p->count - 1].name, "conv_out.bias"), 0);
    for (int i = 0; i < p->count; i++) {
        uint64_t shape[4];
        int nd = dcl_unet_tensor_shape(u, i, shape);
        uint64_t n = 1;
        for (int d = 0; d < nd; d++) n *= shape[d];
        CHECK(nd == 1 || nd == 2 || nd == 4);
        CHECK_EQ(n, p->views[i].n);
    }
    uint64_t shape[4];
    CHECK_EQ(dcl_unet_tensor_shape(u, p->count, shape), 0);
    CHECK_EQ(dcl_unet_tensor_shape(u, -1, shape), 0);
    CHECK(dcl_unet_get_config(u)->base == 4);

    // Init: PyTorch's defaults, conv_out zero, gradients zero.
    float *w = read_arena(p), *g = read_arena(dcl_unet_grads(u));
    if (w && g) {
        for (int i = 0; i < p->count; i++) {
            const char *name = p->views[i].name;
            uint64_t s[4];
            int nd = dcl_unet_tensor_shape(u, i, s);
            double fan_in = nd == 4 ? (double)(s[1] * s[2] * s[3]) : nd == 2 ? (double)s[1] : 0;
            int bias = strstr(name, ".bias") != NULL;
            if (bias && i > 0) { // a bias takes its weight's fan-in
                uint64_t ws[4];
                int wd = dcl_unet_tensor_shape(u, i - 1, ws);
                fan_in = wd == 4 ? (double)(ws[1] * ws[2] * ws[3]) : (double)ws[1];
            }
            double sum = 0, sum2 = 0;
            int zero = 0, one = 0;
            for (size_t j = 0; j < p->views[i].n; j++) {
                double v = w[p->views[i].off + j];
                sum += fabs(v), sum2 += v * v;
                zero += v == 0.0, one += v == 1.0;
            }
            size_t n = p->views[i].n;
            if (strncmp(name, "conv_out.", 9) == 0 || (strstr(name, "norm") && bias)) {
                CHECK_EQ(zero, n);
            } else if (strstr(name, "norm")) {
                CHECK_EQ(one, n);
            } else if (strcmp(name, "class_emb.weight") == 0) {
                CHECK(sum2 / n > 0.5 && sum2 / n < 1.6); // N(0, 1), 64 values
            } else {
                double bound = 1.0 / sqrt(fan_in);
                for (size_t j = 0; j < n; j++) CHECK(fabs(w[p->views[i].off + j]) <= bound);
                if (n >= 8) CHECK(sum / n > 0.15 * bound && sum / n < 0.85 * bound);
            }
        }
        for (size_t j = 0; j < p->n; j++) CHECK(g[j] == 0.0f);
    }
    free(w), free(g);

    // Bad configurations and batches fail with DCL_ERR_ARG and a message naming the setting.
    dcl_unet *bad = (dcl_unet *)1;
    dcl_unet_config c = tiny;
    c.height = 6, c.levels = 3;
    CHECK(dcl_unet_init(&bad, dev, &c, 1, 4) == DCL_ERR_ARG && bad == NULL);
    CHECK(strstr(dcl_last_error(), "divisible") != NULL);
    c = tiny, c.groups = 3;
    CHECK(dcl_unet_init(&bad, dev, &c, 1, 4) == DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "groups") != NULL);
    c = tiny, c.emb_dim = 5;
    CHECK(dcl_unet_init(&bad, dev, &c, 1, 4) == DCL_ERR_ARG);
    CHECK(dcl_unet_flops(&c) == 0);
    struct data d;
    struct net n;
    if (unet_data_init(&d, &tiny, 4, 3) && unet_init(&n, "cpu", &tiny, 1, &d, 3)) {
        CHECK(net_forward(&n, 4) == DCL_ERR_ARG);
        CHECK(strstr(dcl_last_error(), "max_batch") != NULL);
        CHECK(dcl_unet_backward(n.u, dcl_at(n.dout, 0), 2) == DCL_ERR_ARG); // no forward yet
        CHECK(net_forward(&n, 2) == DCL_OK);
        CHECK(dcl_unet_backward(n.u, dcl_at(n.dout, 0), 3) == DCL_ERR_ARG); // another batch
        CHECK(dcl_unet_backward(n.u, dcl_at(n.dout, 0), 2) == DCL_OK);
        dcl_arena other;
        dcl_arena_view v = {.name = "w", .n = 3};
        CHECK(dcl_arena_init(&other, n.dev, "other", &v, 1) == DCL_OK);
        CHECK(dcl_unet_forward(n.u, &other, dcl_at(n.out, 0), dcl_at(n.x, 0), dcl_at(n.t, 0),
                               dcl_at(n.labels, 0), 2) == DCL_ERR_ARG);
        dcl_arena_free(&other);
        net_free(&n);
    }
    data_free(&d);
    dcl_unet_free(u);
    dcl_device_free(dev);
}

// ---- res_blocks and attention --------------------------------------------------------------

// tiny with two ResBlocks per level and attention (2 heads) at both levels, hence in the middle.
static dcl_unet_config tiny_attn(void) {
    dcl_unet_config c = tiny;
    c.res_blocks = 2, c.attn = 3, c.heads = 2;
    return c;
}

// Parameters of an attention block of c channels: GroupNorm 2c, qkv 3c·c + 3c, proj c·c + c; and
// of a ResBlock c → c with time-embedding width T: norms 4c, convs 2(9c² + c), emb T·c + c.
static size_t attn_params(size_t c) { return 4 * c * c + 6 * c; }
static size_t res_params(size_t c, size_t T) { return 4 * c + 2 * (9 * c * c + c) + T * c + c; }

static size_t params_of(const dcl_unet_config *c) {
    size_t n = 0;
    CHECK(dcl_unet_param_count(c, &n) == DCL_OK);
    return n;
}

// The 3×32×32 network with attention at 16 and 8 and two ResBlocks per level: names, shapes,
// counts and FLOPs against closed forms, proj starting at zero, a forward and backward; a 3×64×64
// network of 5 levels; memory estimates against what dcl_unet_init allocates; bad shapes.
static void check_attn_layout(void) {
    dcl_device *dev;
    if (dcl_device_open(&dev, "cpu") != DCL_OK) {
        check_failures++;
        return;
    }
    dcl_unet_config c;
    dcl_unet_config_default(&c, 3, 32, 32);
    c.base = 8, c.groups = 4, c.emb_dim = 8, c.res_blocks = 2, c.attn = 6, c.heads = 2;
    c.num_classes = 5;
    dcl_unet_config plain = c, one = c, bottom = c, single = c;
    plain.attn = 0, one.attn = 2, bottom.attn = 4, single.attn = 0, single.res_blocks = 1;
    size_t T = 32, R1 = 16 * 16;
    // Attention at level 1 of 3: 2 blocks down, 2 up; at the bottom level also the middle's
    // attention block and its second ResBlock. A second ResBlock per level: 2 more per level.
    CHECK_EQ(params_of(&one) - params_of(&plain), 4 * attn_params(16));
    CHECK_EQ(params_of(&bottom) - params_of(&plain), 5 * attn_params(16) + res_params(16, T));
    CHECK_EQ(params_of(&plain) - params_of(&single),
             2 * (res_params(8, T) + res_params(16, T) + res_params(16, T)));
    CHECK_EQ(params_of(&c), params_of(&one) + params_of(&bottom) - params_of(&plain));
    // FLOPs: per attention block the 1×1 convolutions 2(3c² + c²)R and q kᵀ, p v 2·2R²c.
    double fa = 2.0 * (3 * 16 * 16 + 16 * 16) * R1 + 4.0 * R1 * R1 * 16;
    CHECK_NEAR(dcl_unet_flops(&one) - dcl_unet_flops(&plain), 4 * fa, 0, 1e-12);

    dcl_unet *u = NULL;
    CHECK(dcl_unet_init(&u, dev, &c, 7, 2) == DCL_OK);
    if (u) {
        const dcl_arena *p = dcl_unet_params(u);
        size_t total = 0;
        for (int i = 0; i < p->count; i++) total += p->views[i].n;
        CHECK_EQ(total, params_of(&c));
        static const struct {
            const char *name;
            int ndim;
            uint64_t shape[4];
        } want[] = {
            {"down.0.res1.conv1.weight", 4, {8, 8, 3, 3}},
            {"down.1.res.skip.weight", 4, {16, 8, 1, 1}},
            {"down.1.attn.qkv.weight", 4, {48, 16, 1, 1}},
            {"down.1.attn1.proj.weight", 4, {16, 16, 1, 1}},
            {"down.2.attn1.norm.weight", 1, {16}},
            {"mid.res.conv1.weight", 4, {16, 16, 3, 3}},
            {"mid.attn.qkv.bias", 1, {48}},
            {"mid.res1.conv2.weight", 4, {16, 16, 3, 3}},
            {"up.2.res.conv1.weight", 4, {16, 32, 3, 3}},
            {"up.2.res1.conv1.weight", 4, {16, 16, 3, 3}},
            {"up.1.attn1.proj.bias", 1, {16}},
            {"up.0.res.conv1.weight", 4, {8, 24, 3, 3}},
            {"up.0.res1.norm1.weight", 1, {8}},
            {"conv_out.weight", 4, {3, 8, 3, 3}},
        };
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            int k = dcl_arena_find(p, want[i].name);
            uint64_t shape[4] = {0, 0, 0, 0};
            if (k < 0) {
                fprintf(stderr, "missing view %s\n", want[i].name);
                check_failures++;
                continue;
            }
            CHECK_EQ(dcl_unet_tensor_shape(u, k, shape), want[i].ndim);
            for (int d = 0; d < want[i].ndim; d++) CHECK_EQ(shape[d], want[i].shape[d]);
        }
        CHECK_EQ(dcl_arena_find(p, "down.0.attn.norm.weight"), -1); // no attention at 32
        CHECK_EQ(dcl_arena_find(p, "up.0.attn1.qkv.weight"), -1);
        CHECK_EQ(dcl_arena_find(p, "down.0.res2.conv1.weight"), -1);
        // Order: a block's attention follows its ResBlock; proj starts at zero.
        CHECK_EQ(dcl_arena_find(p, "down.1.attn.norm.weight"),
                 dcl_arena_find(p, "down.1.res.skip.bias") + 1);
        float *w = read_arena(p);
        int projs = 0;
        for (int i = 0; w && i < p->count; i++) {
            if (!strstr(p->views[i].name, ".proj.")) continue;
            projs++;
            for (size_t j = 0; j < p->views[i].n; j++) CHECK(w[p->views[i].off + j] == 0.0f);
        }
        CHECK_EQ(projs, 2 * 9); // 4 + 4 blocks at each of 2 levels and the middle's, × w and b
        free(w);
        // What dcl_unet_memory_bytes counts is what dcl_unet_init allocated.
        dcl_unet_memory m;
        CHECK(dcl_unet_memory_bytes(&c, dev, 2, &m) == DCL_OK);
        CHECK_EQ(2 * m.params + m.saved + m.work + m.columns, dcl_unet_device_bytes(u));
        CHECK_EQ(m.total, 5 * m.params + m.saved + m.work + m.columns + m.batch);
        CHECK_EQ(m.batch, 4 * 7 * 2 * 3 * 32 * 32);
        dcl_unet_free(u);
    }
    // A batch that cannot fit names the largest that does, which fits.
    size_t fits = 0;
    CHECK(dcl_unet_check_memory(&c, dev, (size_t)1 << 30, &fits) == DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "use a batch of at most") != NULL);
    CHECK(fits > 0 && fits < (size_t)1 << 30);
    CHECK(dcl_unet_check_memory(&c, dev, fits, NULL) == DCL_OK);
    CHECK(dcl_unet_check_memory(&c, dev, fits + 1, NULL) == DCL_ERR_ARG);

    // Forward and backward of the 3×32×32 network: outputs (N, 3, 32, 32), finite, non-zero
    // gradients in every attention view.
    struct data d;
    struct net n;
    if (unet_data_init(&d, &c, 2, 4) && unet_init(&n, "cpu", &c, 8, &d, 2)) {
        perturb(n.u);
        CHECK(net_forward(&n, 2) == DCL_OK);
        CHECK(dcl_unet_backward(n.u, dcl_at(n.dout, 0), 2) == DCL_OK);
        float *o = malloc(d.N * d.D * sizeof *o), *g = read_arena(dcl_unet_grads(n.u));
        const dcl_arena *p = dcl_unet_grads(n.u);
        CHECK(d.D == 3 * 32 * 32);
        if (o && g && dcl_buffer_read(n.out, 0, d.N * d.D, o) == DCL_OK) {
            double sum = 0;
            for (size_t i = 0; i < d.N * d.D; i++) sum += fabs(o[i]);
            CHECK(isfinite(sum) && sum > 0);
            for (int k = 0; k < p->count; k++) {
                double gs = 0;
                for (size_t j = 0; j < p->views[k].n; j++) gs += fabs(g[p->views[k].off + j]);
                CHECK(isfinite(gs));
                if (strstr(p->views[k].name, "attn") && !(gs > 0))
                    fprintf(stderr, "zero gradient at %s\n", p->views[k].name), check_failures++;
            }
        }
        free(o), free(g);
        net_free(&n);
    }
    data_free(&d);

    // 3×64×64 with 5 levels (64 → 4) and attention at 16: a forward of finite outputs.
    dcl_unet_config big;
    dcl_unet_config_default(&big, 3, 64, 64);
    big.base = 8, big.groups = 4, big.emb_dim = 8, big.levels = 5, big.attn = 4;
    if (unet_data_init(&d, &big, 1, 5) && unet_init(&n, "cpu", &big, 9, &d, 1)) {
        perturb(n.u);
        CHECK(net_forward(&n, 1) == DCL_OK);
        float *o = malloc(d.D * sizeof *o);
        CHECK(d.D == 3 * 64 * 64);
        if (o && dcl_buffer_read(n.out, 0, d.D, o) == DCL_OK) {
            double sum = 0;
            for (size_t i = 0; i < d.D; i++) sum += fabs(o[i]);
            CHECK(isfinite(sum) && sum > 0);
        }
        free(o);
        net_free(&n);
    }
    data_free(&d);

    // Non-square images: 2×16×24 (16×24 → 8×12 → 4×6) with attention at 8×12, forward and
    // backward finite.
    dcl_unet_config wide;
    dcl_unet_config_default(&wide, 2, 16, 24);
    wide.base = 8, wide.groups = 4, wide.emb_dim = 8, wide.attn = 2;
    if (unet_data_init(&d, &wide, 2, 6) && unet_init(&n, "cpu", &wide, 10, &d, 2)) {
        perturb(n.u);
        CHECK(net_forward(&n, 2) == DCL_OK);
        CHECK(dcl_unet_backward(n.u, dcl_at(n.dout, 0), 2) == DCL_OK);
        float *o = malloc(d.N * d.D * sizeof *o), *g = read_arena(dcl_unet_grads(n.u));
        CHECK(d.D == 2 * 16 * 24);
        if (o && g && dcl_buffer_read(n.out, 0, d.N * d.D, o) == DCL_OK) {
            double so = 0, sg = 0;
            for (size_t i = 0; i < d.N * d.D; i++) so += fabs(o[i]);
            for (size_t i = 0; i < dcl_unet_grads(n.u)->n; i++) sg += fabs(g[i]);
            CHECK(isfinite(so) && so > 0 && isfinite(sg) && sg > 0);
        }
        free(o), free(g);
        net_free(&n);
    }
    data_free(&d);

    // The largest layout: 5 levels, 4 blocks each, attention everywhere (the view and
    // convolution tables' bounds), counted without a device.
    dcl_unet_config most;
    dcl_unet_config_default(&most, 3, 16, 16);
    most.base = 4, most.groups = 2, most.emb_dim = 4, most.levels = DCL_UNET_MAX_LEVELS;
    most.res_blocks = DCL_UNET_MAX_RES_BLOCKS, most.attn = (1u << DCL_UNET_MAX_LEVELS) - 1;
    most.num_classes = 3;
    size_t most_params = 0;
    CHECK(dcl_unet_param_count(&most, &most_params) == DCL_OK && most_params > 0);
    CHECK(dcl_unet_flops(&most) > 0);

    // Impossible shapes: refused before anything is allocated, saying what would work.
    dcl_unet *bad = (dcl_unet *)1;
    dcl_unet_config e = c;
    e.height = 30;
    CHECK(dcl_unet_init(&bad, dev, &e, 1, 2) == DCL_ERR_ARG && bad == NULL);
    CHECK(strstr(dcl_last_error(), "at most 2 levels") && strstr(dcl_last_error(), "28×32"));
    e = c, e.attn = 8; // level 3 of 3
    CHECK(dcl_unet_init(&bad, dev, &e, 1, 2) == DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "--attn") && strstr(dcl_last_error(), "32, 16, 8"));
    e = c, e.heads = 3;
    CHECK(dcl_unet_init(&bad, dev, &e, 1, 2) == DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "--heads") != NULL);
    e = c, e.res_blocks = DCL_UNET_MAX_RES_BLOCKS + 1;
    CHECK(dcl_unet_init(&bad, dev, &e, 1, 2) == DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "--res-blocks") != NULL);
    e = c, e.levels = DCL_UNET_MAX_LEVELS + 1;
    CHECK(dcl_unet_param_count(&e, &fits) == DCL_ERR_ARG);
    dcl_device_free(dev);
}

// The default configuration's size, printed for the README.
static void print_default(void) {
    dcl_unet_config c;
    dcl_unet_config_default(&c, 1, 28, 28);
    dcl_device *dev;
    dcl_unet *u = NULL;
    if (dcl_device_open(&dev, "cpu") != DCL_OK) return;
    for (int k = 0; k <= 10; k += 10) {
        c.num_classes = k;
        if (dcl_unet_init(&u, dev, &c, 1, 64) != DCL_OK) {
            fprintf(stderr, "default U-Net: %s\n", dcl_last_error());
            check_failures++;
            break;
        }
        const dcl_arena *p = dcl_unet_params(u);
        size_t total = 0;
        for (int i = 0; i < p->count; i++) total += p->views[i].n;
        char mult[64] = "";
        for (int l = 0; l < c.levels; l++)
            snprintf(mult + strlen(mult), sizeof mult - strlen(mult), "%s%d", l ? "," : "",
                     c.mult[l]);
        printf("default U-Net %d×%d×%d (base %d, mult %s, groups %d, emb %d, %d classes): %zu "
               "parameters in %d tensors, %.1f MFLOP per image forward, %.1f MiB of device "
               "memory at batch 64\n",
               c.channels, c.height, c.width, c.base, mult, c.groups, c.emb_dim, c.num_classes,
               total, p->count, dcl_unet_flops(&c) / 1e6,
               (double)dcl_unet_device_bytes(u) / (1 << 20));
        dcl_unet_free(u);
    }
    dcl_device_free(dev);
}

// ---- finite differences on the CPU ---------------------------------------------------------

// Up to 4 elements of every parameter view (first, last, two drawn) against the fourth-order
// central difference (8(L(+h) − L(−h)) − (L(+2h) − L(−2h))) / 12h. No single h suits every view
// in float: the forward's rounding of L (~1e-6: 128 outputs through ~20 layers) divided by
// 12h/18 dominates for small h, truncation (h⁴/30·|L⁽⁵⁾|) for large h. Measured: on
// down.0.res.emb.bias h = 1e-2 is off by 3e-4 (rounding) and 3e-2 by 6e-6; on
// down.1.res.conv1.weight h = 3e-2 is off by 1e-3 (truncation) and 1e-2 by 5e-5. Each element
// must match the closer of h = 1e-2 and 3e-2 within 3e-3 on |fd − g| / (0.1 + |g|) (the worst
// over six seeds was 1.2e-3, about 1e-4 absolute: rounding); a wrong gradient is off by far more.
// The worst is printed.
// Backward accumulates: a second backward doubles every gradient.
#define FD_TOL 3e-3

// picks: elements checked per view (up to 4).
static void check_fd(const char *what, const dcl_unet_config *cfg, int picks) {
    struct data d;
    struct net n;
    if (!unet_data_init(&d, cfg, 2, 7)) return;
    if (!unet_init(&n, "cpu", cfg, 99, &d, 2)) {
        data_free(&d);
        return;
    }
    float *out = malloc(d.N * d.D * sizeof *out);
    dcl_arena *p = dcl_unet_params(n.u), *g = dcl_unet_grads(n.u);
    perturb(n.u);
    CHECK(net_forward(&n, d.N) == DCL_OK);
    CHECK(dcl_unet_backward(n.u, dcl_at(n.dout, 0), d.N) == DCL_OK);
    float *grad = read_arena(g), *w = read_arena(p);
    CHECK(dcl_unet_backward(n.u, dcl_at(n.dout, 0), d.N) == DCL_OK);
    float *grad2 = read_arena(g);
    double worst = 0;
    const char *worst_name = "";
    size_t count = 0, nonzero_views = 0;
    if (out && grad && w && grad2) {
        for (int k = 0; k < p->count; k++) {
            size_t nv = p->views[k].n, pick[4] = {0, nv - 1, 0, 0};
            pick[2] = dcl_rng_bits_at(11, DCL_RNG_TEST, (uint32_t)k, 0) % nv;
            pick[3] = dcl_rng_bits_at(11, DCL_RNG_TEST, (uint32_t)k, 1) % nv;
            int any = 0;
            for (int q = 0; q < picks; q++) {
                size_t j = pick[q], at = p->views[k].off + j;
                // The closer of the differences with h = 1e-2 and 3e-2 (see above).
                double fd = 0, err = INFINITY;
                for (int hi = 0; hi < 2; hi++) {
                    float keep = w[at], h = hi ? 3e-2f : 1e-2f;
                    float v[4] = {keep + h, keep - h, keep + 2 * h, keep - 2 * h};
                    double l[4];
                    for (int e = 0; e < 4; e++) {
                        l[e] = net_loss_at(&n, &d, p, at, v[e], out);
                    }
                    CHECK(dcl_buffer_write(p->buf, at, 1, &keep) == DCL_OK);
                    double f = (8.0 * (l[0] - l[1]) - (l[2] - l[3])) / (12.0 * h);
                    double e = fabs(f - grad[at]) / (0.1 + fabs((double)grad[at]));
                    if (e < err) err = e, fd = f;
                }
                CHECK_NEAR(grad2[at], 2.0 * grad[at], 1e-7, 1e-5);
                if (err > worst) worst = err, worst_name = p->views[k].name;
                if (err > FD_TOL) {
                    fprintf(stderr, "unet: %s[%zu]: backward %.7g, finite difference %.7g\n",
                            p->views[k].name, j, (double)grad[at], fd);
                    check_failures++;
                }
                any |= grad[at] != 0.0f;
                count++;
            }
            nonzero_views += any;
        }
    }
    // Every view has a non-zero gradient somewhere in its sample (the class rows of labels that
    // are absent could be zero; the sample includes row 0 and the null row K).
    CHECK(nonzero_views == (size_t)p->count);
    printf("unet fd %s: %zu parameters from %d views (%zu with non-zero gradients), worst "
           "|fd − grad| / (0.1 + |grad|) = %.2e at %s (tol %.0e)\n",
           what, count, p->count, nonzero_views, worst, worst_name, FD_TOL);
    free(out), free(grad), free(grad2), free(w);
    net_free(&n);
    data_free(&d);
}

// ---- comparisons -------------------------------------------------------------------------------

// The configuration of the device comparison: 16×16, base 8, 3 levels; with --small (runs under
// Oclgrind, which simulates every work-item of CLBlast's GEMMs) 8×8, base 4, 2 levels.
static dcl_unet_config small_config(int small) {
    dcl_unet_config c = {.channels = 1,
                         .height = small ? 8 : 16,
                         .width = small ? 8 : 16,
                         .base = small ? 4 : 8,
                         .levels = small ? 2 : 3,
                         .mult = {1, 2, 2},
                         .groups = small ? 2 : 4,
                         .emb_dim = 8,
                         .num_classes = 10};
    return c;
}

// Results of one model: forward outputs with labels, with the null class (labels NULL) and with
// "EMA" weights (0.75 × own), gradients after two backwards, and the parameters.
struct result {
    float *out, *out_null, *out_ema, *grads, *params;
};

static void result_free(struct result *r) {
    free(r->out), free(r->out_null), free(r->out_ema), free(r->grads), free(r->params);
    memset(r, 0, sizeof *r);
}

static int run_model(struct net *n, const struct data *d, struct result *r) {
    size_t nd = d->N * d->D, N = d->N;
    dcl_ptr x = dcl_at(n->x, 0), t = dcl_at(n->t, 0), y = dcl_at(n->out, 0), none = {NULL, 0};
    memset(r, 0, sizeof *r);
    r->out = malloc(nd * sizeof(float)), r->out_null = malloc(nd * sizeof(float));
    r->out_ema = malloc(nd * sizeof(float));
    if (!r->out || !r->out_null || !r->out_ema) return 0;
    perturb(n->u);
    CHECK(dcl_unet_forward(n->u, NULL, y, x, t, none, N) == DCL_OK);
    CHECK(dcl_buffer_read(n->out, 0, nd, r->out_null) == DCL_OK);
    CHECK(net_forward(n, N) == DCL_OK);
    CHECK(dcl_buffer_read(n->out, 0, nd, r->out) == DCL_OK);
    CHECK(dcl_unet_backward(n->u, dcl_at(n->dout, 0), N) == DCL_OK);
    CHECK(dcl_unet_backward(n->u, dcl_at(n->dout, 0), N) == DCL_OK);
    r->params = read_arena(dcl_unet_params(n->u));
    r->grads = read_arena(dcl_unet_grads(n->u));
    dcl_arena ema;
    ema_init(&ema, n->dev, dcl_unet_params(n->u));
    CHECK(dcl_unet_forward(n->u, &ema, y, x, t, dcl_at(n->labels, 0), N) == DCL_OK);
    CHECK(dcl_buffer_read(n->out, 0, nd, r->out_ema) == DCL_OK);
    CHECK(dcl_unet_backward(n->u, dcl_at(n->dout, 0), N) == DCL_ERR_ARG); // after an EMA forward
    dcl_arena_free(&ema);
    return r->params && r->grads;
}

// Compares result b against the reference a: outputs and every gradient view norm-wise within
// tol, naming the first view that disagrees. Returns the worst gradient error.
static double compare(const char *what, const struct result *b, const struct result *a,
                      const dcl_arena *p, size_t nd, double tol, double *e_out) {
    double eo = normwise(b->out, a->out, nd), en = normwise(b->out_null, a->out_null, nd);
    double ee = normwise(b->out_ema, a->out_ema, nd);
    double eg = grads_normwise(what, b->grads, a->grads, p, tol);
    CHECK(eo <= tol);
    CHECK(en <= tol);
    CHECK(ee <= tol);
    CHECK(eg <= tol);
    *e_out = eo > en ? (eo > ee ? eo : ee) : (en > ee ? en : ee);
    return eg;
}

// Tolerance, norm-wise per tensor: the time embedding may differ by up to ~4.8e-4 absolute on a
// conforming device (exp, sin, cos), GEMMs accumulate in other orders (~u·K), and GroupNorm
// divides by per-group deviations. Through ~30 layers this stays near 1e-5 of each tensor's
// largest entry on PoCL (see the printed figures); 2e-3 leaves room for other devices' GEMMs.
#define UNET_TOL 2e-3

// The attention network of the device comparison: 3×16×16, base 8, 3 levels, two ResBlocks per
// level, attention with 2 heads at 8 and 4 (so in the middle too); with --small 3×8×8, base 4,
// 2 levels, one block per level, attention at 4.
static dcl_unet_config attn_config(int small) {
    dcl_unet_config c = small_config(small);
    c.channels = 3, c.attn = small ? 2 : 6, c.heads = 2, c.res_blocks = small ? 1 : 2;
    return c;
}

// The same model (same seed) on the CPU and on spec: parameters bitwise equal, forward outputs
// (with labels, with the null class, with EMA weights) and every gradient view within UNET_TOL.
static void check_device_config(const char *spec, const dcl_unet_config *config) {
    dcl_unet_config cfg = *config;
    struct data d;
    struct net c, o;
    struct result rc, ro;
    size_t N = 3;
    if (!unet_data_init(&d, &cfg, N, 123)) return;
    if (!unet_init(&c, "cpu", &cfg, 2024, &d, N + 2)) {
        data_free(&d);
        return;
    }
    if (!unet_init(&o, spec, &cfg, 2024, &d, N + 2)) {
        net_free(&c), data_free(&d);
        return;
    }
    if (run_model(&c, &d, &rc) && run_model(&o, &d, &ro)) {
        const dcl_arena *p = dcl_unet_params(c.u);
        int same = memcmp(rc.params, ro.params, p->n * sizeof(float)) == 0;
        CHECK(same); // same init (and the same perturbation), bitwise
        double e_out, e_grad = compare(spec, &ro, &rc, p, N * d.D, UNET_TOL, &e_out);
        // The EMA and null-class forwards really differ from the plain one.
        CHECK(normwise(rc.out_ema, rc.out, N * d.D) > 1e-3);
        CHECK(normwise(rc.out_null, rc.out, N * d.D) > 1e-4);
        printf("%-4s %-8s unet %dx%dx%d base %d blocks %d attn %#x N=%zu: params bitwise %s, "
               "outputs %.2e, grads %.2e (norm-wise, tol %.0e)\n",
               e_out <= UNET_TOL && e_grad <= UNET_TOL ? "ok" : "FAIL", spec, cfg.channels,
               cfg.height, cfg.width, cfg.base, cfg.res_blocks ? cfg.res_blocks : 1, cfg.attn, N,
               same ? "equal" : "DIFFER", e_out, e_grad, UNET_TOL);
    }
    result_free(&rc), result_free(&ro);
    net_free(&c), net_free(&o);
    data_free(&d);
}

static void check_device(const char *spec, int small) {
    dcl_unet_config plain = small_config(small), attn = attn_config(small);
    check_device_config(spec, &plain);
    check_device_config(spec, &attn);
}

// Convolutions in chunks of one sample (DIFFCL_UNET_COL_BUDGET=1) against whole batches on the
// CPU, both on the im2col + GEMM path (DIFFCL_CONV_COLUMNS=1): the same sums in other GEMM
// groupings; and the CPU's default whole-convolution ops against that path.
static void check_chunks(int small) {
    dcl_unet_config cfg = small_config(small);
    struct data d;
    struct net a, b, w;
    struct result ra, rb, rw;
    if (!unet_data_init(&d, &cfg, 3, 77)) return;
    setenv("DIFFCL_CONV_COLUMNS", "1", 1);
    int ok_a = unet_init(&a, "cpu", &cfg, 5, &d, 3);
    setenv("DIFFCL_UNET_COL_BUDGET", "1", 1);
    int ok = ok_a && unet_init(&b, "cpu", &cfg, 5, &d, 3);
    unsetenv("DIFFCL_UNET_COL_BUDGET");
    unsetenv("DIFFCL_CONV_COLUMNS");
    if (!ok_a) {
        data_free(&d);
        return;
    }
    int ok_w = unet_init(&w, "cpu", &cfg, 5, &d, 3);
    if (ok && run_model(&a, &d, &ra) && run_model(&b, &d, &rb)) {
        double e_out,
            e_grad = compare("chunked", &rb, &ra, dcl_unet_params(a.u), 3 * d.D, 1e-5, &e_out);
        printf("%-4s cpu chunks of 1 sample vs whole batch: outputs %.2e, grads %.2e (tol 1e-05)\n",
               e_out <= 1e-5 && e_grad <= 1e-5 ? "ok" : "FAIL", e_out, e_grad);
        if (ok_w && run_model(&w, &d, &rw)) {
            e_grad = compare("whole conv", &rw, &ra, dcl_unet_params(a.u), 3 * d.D, 1e-5, &e_out);
            printf("%-4s cpu whole-convolution ops vs im2col + GEMM: outputs %.2e, grads %.2e (tol "
                   "1e-05)\n",
                   e_out <= 1e-5 && e_grad <= 1e-5 ? "ok" : "FAIL", e_out, e_grad);
            result_free(&rw);
        }
        result_free(&ra), result_free(&rb);
    }
    if (ok_w) net_free(&w);
    // A malformed budget is an error naming the variable.
    setenv("DIFFCL_UNET_COL_BUDGET", "lots", 1);
    dcl_unet *bad = (dcl_unet *)1;
    CHECK(dcl_unet_init(&bad, a.dev, &cfg, 5, 3) == DCL_ERR_ARG && bad == NULL);
    CHECK(strstr(dcl_last_error(), "DIFFCL_UNET_COL_BUDGET") != NULL);
    unsetenv("DIFFCL_UNET_COL_BUDGET");
    if (ok) net_free(&b);
    net_free(&a);
    data_free(&d);
}

static void on_device(const char *spec, void *small) { check_device(spec, *(int *)small); }

int main(int argc, char **argv) {
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_layout();
    check_attn_layout();
    print_default();
    check_fd("plain", &tiny, 4);
    // With attention (175 views): the first and last element of each view.
    dcl_unet_config ta = tiny_attn();
    check_fd("attention", &ta, 2);
    check_chunks(small);
    // The harness against itself: a second CPU model must agree.
    check_device("cpu", small);

    int rc = check_opencl_devices(on_device, &small);
    if (rc == 77) return rc;
    // Again with the GEMMs through cl/gemm.cl, as `diffcl tune` chooses on PoCL: the same
    // convolutions run as whole ops on padded planes (host/README.md, "Convolutions on OpenCL"),
    // over the whole batch and in chunks of one sample.
    setenv("DIFFCL_CL_GEMM", "own", 1);
    printf("---- DIFFCL_CL_GEMM=own\n");
    int rc2 = check_opencl_devices(on_device, &small);
    setenv("DIFFCL_UNET_COL_BUDGET", "1", 1);
    printf("---- DIFFCL_CL_GEMM=own DIFFCL_UNET_COL_BUDGET=1\n");
    int rc3 = check_opencl_devices(on_device, &small);
    return rc ? rc : rc2 ? rc2 : rc3;
}
