// The U-Net denoiser (include/diffcl/unet.h): parameter layout and initialisation, forward with
// saved activations, and backward into the gradient arena. Forward and backward are device ops
// only; nothing is read back to the host.
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h" // TRY, DCL_ASSERT, dcl__fail
#include "diffcl/ops.h" // channel bias, group norm, SiLU, embeddings, up/downsampling, attention
#include "diffcl/rng.h" // DCL_RNG_INIT, dcl_rng_normal_at
#include "diffcl/unet.h"
#include "nn/layers.h" // dcl__linear_*, dcl__conv2d_*, dcl__init_uniform, dcl__check_param_layout

// 5 levels × 2 paths × 4 blocks × (12 + 6) views, the middle's 30 and 27 others
#define MAX_VIEWS 800
#define MAX_CONVS 240 // the same blocks × (3 + 2) convolutions, the middle's 8 and 10 others
#define MAX_RB DCL_UNET_MAX_RES_BLOCKS
#define GN_EPS 1e-5f // PyTorch's GroupNorm default

enum init_kind { INIT_UNIFORM, INIT_ONE, INIT_ZERO, INIT_NORMAL };

// PyTorch shape and initialisation of one parameter view.
struct view_info {
    uint64_t shape[4];
    int ndim;
    enum init_kind kind;
    float bound; // INIT_UNIFORM: U(−bound, bound)
};

// The layers, each with the views of its parameters in the arena: w, then b (PyTorch's order).
// A k×k convolution with zero padding k/2 (nn/layers.h).
struct conv {
    int w, b; // weight (co, ci, k, k), bias (co)
    dcl__conv2d_shape s;
};
struct linear {
    int w, b; // weight (out, in), bias (out)
    int in, out;
};
// GroupNorm over c channels.
struct norm {
    int w, b; // weight (c), bias (c)
    int c;
};

// One residual block at an H×W resolution (include/diffcl/unet.h). Offsets into the saved buffer,
// each sized for max_batch samples; R = H·W.
struct res {
    int cin, cout, H, W, has_skip;
    struct norm norm1; // (cin)
    struct conv conv1; // weight (cout, cin, 3, 3), bias (cout)
    struct linear emb; // weight (cout, T), bias (cout)
    struct norm norm2; // (cout)
    struct conv conv2; // weight (cout, cout, 3, 3), bias (cout)
    struct conv skip;  // weight (cout, cin, 1, 1), bias (cout); only when has_skip (cin ≠ cout)
    size_t h1;         // (N, cin, R) GroupNorm 1's output
    size_t c1;         // (N, cout, R) conv1 + emb: GroupNorm 2's input
    size_t h2;         // (N, cout, R) GroupNorm 2's output
    size_t s1, s2;     // (N, cin, R), (N, cout, R): SiLU(h1), SiLU(h2), the convolutions' inputs,
                       // kept for their weight gradients (recomputing them cost an exp each)
    size_t out;        // (N, cout, R) the block's output
    size_t mean1, rstd1, mean2, rstd2; // (N, G) GroupNorm statistics
};

// One self-attention block of c channels at an H×W resolution (include/diffcl/unet.h). Offsets
// into the saved buffer, each sized for max_batch samples.
struct attn {
    int c, H, W;
    struct norm norm;  // (c)
    struct conv qkv;   // weight (3c, c, 1, 1), bias (3c)
    struct conv proj;  // weight (c, c, 1, 1), bias (c); zero at the start
    size_t hn;         // (N, c, R) GroupNorm's output, qkv's input
    size_t mean, rstd; // (N, G)
    size_t q;          // (N, 3c, R) [q | k | v]
    size_t ao;         // (N, c, R) the attention's output, proj's input
    size_t lse;        // (N, heads, R) the softmax's log-sum-exp per row
    size_t out;        // (N, c, R) the block's output x + proj(ao)
};

// A ResBlock, followed by an attention block when has_attn.
struct block {
    struct res res;
    int has_attn;
    struct attn attn;
};

// One resolution: H×W = the image's / 2^l, ch = base·mult[l].
struct level {
    int ch, H, W;
    int cu; // channels arriving from below on the up path (concatenated before skip_l)
    struct block down[MAX_RB], up[MAX_RB];
    struct conv downsample; // levels < L − 1: weight (ch, ch, 3, 3) stride 2, bias (ch)
    struct conv upsample;   // levels > 0: weight (ch, ch, 3, 3), bias (ch), a 3×3 conv on this
                            // level's output upsampled ×2 to level l − 1's resolution
    size_t dn;              // saved (N, ch, R_{l+1}): the downsample's output (l < L − 1)
    size_t cat;             // saved (N, cu + ch, R): the up block's input [h, skip_l]
    size_t dskip;           // work (N, ch, R): the gradient arriving through skip_l
};

struct dcl_unet {
    dcl_unet_config cfg;
    dcl_device *dev;
    size_t max_batch;
    size_t T, G;  // time-embedding width 4·base, GroupNorm groups
    int B, heads; // ResBlocks per level, attention heads (config 0 read as 1)
    double flops; // per image, from plan()
    int count;    // parameter views
    // The layers; E = emb_dim, C = channels, K = num_classes.
    struct linear time0; // weight (T, E), bias (T)
    struct linear time2; // weight (T, T), bias (T)
    int class_emb;       // view (K + 1, T) of the class embedding, −1 without classes
    struct conv conv_in; // weight (base, C, 3, 3), bias (base)
    struct level lv[DCL_UNET_MAX_LEVELS];
    struct block mid[2]; // at ch_{L−1} channels; mid[1] when level L − 1 has attention
    int n_mid;
    struct norm norm_out; // (ch_0)
    struct conv conv_out; // weight (C, ch_0, 3, 3), bias (C)
    dcl_arena_view views[MAX_VIEWS];
    struct view_info info[MAX_VIEWS];
    // From plan(): every convolution's shape, the per-sample sizes of the largest activation tensor
    // and of the widest block output.
    int n_convs;
    dcl__conv2d_shape conv_shape[MAX_CONVS];
    size_t max_tensor, max_cout;
    size_t col_budget; // elements of columns per chunk of samples

    dcl_arena params, grads;
    dcl_buffer *saved; // activations backward reads
    dcl_buffer *work;  // scratch and activation gradients
    dcl_buffer *cols;  // im2col columns and the GEMM's CNHW output
    // Offsets into saved: the time path (N, E) se, (N, T) z1, s1 = SiLU(z1), temb, ta = SiLU(temb);
    // the inputs xin (N, C, H, W) and lab (N) copied, null_lab (N) the null class; x0 (N, base, R)
    // conv_in's output; hout (N, ch_0, R) and its statistics (N, G) before conv_out, and
    // sout = SiLU(hout).
    size_t se, z1, s1, temb, ta, xin, lab, null_lab, x0, hout, mean_out, rstd_out, sout;
    // Offsets into work: ga, gb (gradients flowing backward), t1, t2, s (the upsampling output),
    // each max_batch·max_tensor; e (N, max_cout) the per-sample channel bias of a block and its
    // gradient; dta (N, T) the gradient of SiLU(temb); tt1, tt2 (N, T) time-path scratch.
    size_t ga, gb, t1, t2, s, e, dta, tt1, tt2;
    size_t n_saved, n_work, n_cols; // elements of each buffer, from layout_sizes()
    size_t n_planes;  // about the device's own scratch for convolutions run whole (layers.h)
    size_t col, cnhw; // offsets into cols
    int columns;      // convolutions use cols (else whole-convolution ops, nn/layers.h)
    size_t saved_n;   // batch of the last own forward (0: none to differentiate)
};

// ---- layout ---------------------------------------------------------------------------------------

static int add_view(dcl_unet *u, const char *prefix, const char *suffix, enum init_kind kind,
                    float bound, int ndim, const uint64_t *shape) {
    DCL_ASSERT(u->count < MAX_VIEWS);
    int i = u->count++;
    snprintf(u->views[i].name, sizeof u->views[i].name, "%s.%s", prefix, suffix);
    struct view_info *v = &u->info[i];
    v->ndim = ndim, v->kind = kind, v->bound = bound;
    size_t n = 1;
    for (int d = 0; d < ndim; d++) n *= (size_t)(v->shape[d] = shape[d]);
    u->views[i].n = n;
    return i;
}

static void note_tensor(dcl_unet *u, size_t per_sample) {
    if (per_sample > u->max_tensor) u->max_tensor = per_sample;
}

// PyTorch's nn.Conv2d (zero: weight and bias start at 0).
static struct conv add_conv(dcl_unet *u, const char *prefix, int ci, int co, int k, int stride,
                            int H, int W, int zero) {
    struct conv c;
    c.s = dcl__conv2d_shape_make((size_t)ci, (size_t)co, (size_t)k, (size_t)stride, (size_t)(k / 2),
                                 (size_t)H, (size_t)W);
    size_t kk = (size_t)ci * k * k, ro = c.s.Ho * c.s.Wo;
    float bound = (float)(1.0 / sqrt((double)kk));
    enum init_kind kind = zero ? INIT_ZERO : INIT_UNIFORM;
    uint64_t ws[4] = {(uint64_t)co, (uint64_t)ci, (uint64_t)k, (uint64_t)k}, bs[1] = {(uint64_t)co};
    c.w = add_view(u, prefix, "weight", kind, bound, 4, ws);
    c.b = add_view(u, prefix, "bias", kind, bound, 1, bs);
    DCL_ASSERT(u->n_convs < MAX_CONVS);
    u->conv_shape[u->n_convs++] = c.s;
    note_tensor(u, (size_t)ci * H * W);
    note_tensor(u, (size_t)co * ro);
    u->flops += 2.0 * (double)co * (double)kk * (double)ro;
    return c;
}

// PyTorch's nn.Linear.
static struct linear add_linear(dcl_unet *u, const char *prefix, int in, int out) {
    struct linear l = {.in = in, .out = out};
    float bound = (float)(1.0 / sqrt((double)in));
    uint64_t ws[2] = {(uint64_t)out, (uint64_t)in}, bs[1] = {(uint64_t)out};
    l.w = add_view(u, prefix, "weight", INIT_UNIFORM, bound, 2, ws);
    l.b = add_view(u, prefix, "bias", INIT_UNIFORM, bound, 1, bs);
    u->flops += 2.0 * in * out;
    return l;
}

// PyTorch's nn.GroupNorm: weight 1, bias 0.
static struct norm add_norm(dcl_unet *u, const char *prefix, int c) {
    uint64_t s[1] = {(uint64_t)c};
    struct norm n = {.c = c};
    n.w = add_view(u, prefix, "weight", INIT_ONE, 0, 1, s);
    n.b = add_view(u, prefix, "bias", INIT_ZERO, 0, 1, s);
    return n;
}

static void add_res(dcl_unet *u, struct res *r, const char *prefix, int cin, int cout, int H,
                    int W) {
    char name[DCL_ARENA_NAME_MAX];
    r->cin = cin, r->cout = cout, r->H = H, r->W = W, r->has_skip = cin != cout;
    snprintf(name, sizeof name, "%s.norm1", prefix);
    r->norm1 = add_norm(u, name, cin);
    snprintf(name, sizeof name, "%s.conv1", prefix);
    r->conv1 = add_conv(u, name, cin, cout, 3, 1, H, W, 0);
    snprintf(name, sizeof name, "%s.emb", prefix);
    r->emb = add_linear(u, name, (int)u->T, cout);
    snprintf(name, sizeof name, "%s.norm2", prefix);
    r->norm2 = add_norm(u, name, cout);
    snprintf(name, sizeof name, "%s.conv2", prefix);
    r->conv2 = add_conv(u, name, cout, cout, 3, 1, H, W, 0);
    if (r->has_skip) {
        snprintf(name, sizeof name, "%s.skip", prefix);
        r->skip = add_conv(u, name, cin, cout, 1, 1, H, W, 0);
    }
    if ((size_t)cout > u->max_cout) u->max_cout = (size_t)cout;
}

// An attention block at level l (include/diffcl/unet.h): GroupNorm, the 1×1 convolutions to
// [q | k | v] and back, and the attention's two R×R×d products per head in the FLOPs.
static void add_attn(dcl_unet *u, struct attn *a, const char *prefix, int c, int H, int W) {
    char name[DCL_ARENA_NAME_MAX];
    a->c = c, a->H = H, a->W = W;
    snprintf(name, sizeof name, "%s.norm", prefix);
    a->norm = add_norm(u, name, c);
    snprintf(name, sizeof name, "%s.qkv", prefix);
    a->qkv = add_conv(u, name, c, 3 * c, 1, 1, H, W, 0);
    snprintf(name, sizeof name, "%s.proj", prefix);
    a->proj = add_conv(u, name, c, c, 1, 1, H, W, 1);
    double R = (double)H * W;
    u->flops += 2.0 * 2.0 * R * R * (double)c; // q kᵀ and p v, R × R × d for each of c/d heads
}

// Block j of a level or of the middle: "{prefix}.res{j}" [and "{prefix}.attn{j}"], no number
// for j = 0.
static void add_block(dcl_unet *u, struct block *b, const char *prefix, int j, int cin, int cout,
                      int H, int W, int attn) {
    char name[40], num[4] = ""; // "down.4.attn3"
    if (j) snprintf(num, sizeof num, "%d", j % 10);
    snprintf(name, sizeof name, "%s.res%s", prefix, num);
    add_res(u, &b->res, name, cin, cout, H, W);
    b->has_attn = attn;
    if (!attn) return;
    snprintf(name, sizeof name, "%s.attn%s", prefix, num);
    add_attn(u, &b->attn, name, cout, H, W);
}

// The saved output of a block: its attention's, else its ResBlock's.
static size_t block_out(const struct block *b) { return b->has_attn ? b->attn.out : b->res.out; }

// The network of include/diffcl/unet.h: parameter views in forward order, convolution geometry,
// per-sample sizes and FLOPs. No device work; cfg must have passed check_config.
static void plan(dcl_unet *u) {
    const dcl_unet_config *c = &u->cfg;
    char name[24]; // "down.4.downsample"
    int L = c->levels, ch = c->base, T = 4 * c->base;
    u->T = (size_t)T, u->G = (size_t)c->groups;
    u->B = c->res_blocks > 0 ? c->res_blocks : 1, u->heads = c->heads > 0 ? c->heads : 1;
    u->time0 = add_linear(u, "time_mlp.0", c->emb_dim, T);
    u->time2 = add_linear(u, "time_mlp.2", T, T);
    u->class_emb = -1;
    if (c->num_classes > 0) {
        uint64_t s[2] = {(uint64_t)c->num_classes + 1, (uint64_t)T};
        u->class_emb = add_view(u, "class_emb", "weight", INIT_NORMAL, 0, 2, s);
    }
    u->conv_in = add_conv(u, "conv_in", c->channels, ch, 3, 1, c->height, c->width, 0);
    for (int l = 0; l < L; l++) {
        struct level *v = &u->lv[l];
        int attn = (c->attn >> l) & 1;
        v->ch = c->base * c->mult[l], v->H = c->height >> l, v->W = c->width >> l;
        snprintf(name, sizeof name, "down.%d", l);
        for (int j = 0; j < u->B; j++, ch = v->ch)
            add_block(u, &v->down[j], name, j, ch, v->ch, v->H, v->W, attn);
        if (l == L - 1) break;
        snprintf(name, sizeof name, "down.%d.downsample", l);
        v->downsample = add_conv(u, name, ch, ch, 3, 2, v->H, v->W, 0);
    }
    const struct level *bottom = &u->lv[L - 1];
    u->n_mid = (c->attn >> (L - 1)) & 1 ? 2 : 1;
    for (int j = 0; j < u->n_mid; j++)
        add_block(u, &u->mid[j], "mid", j, ch, ch, bottom->H, bottom->W, j == 0 && u->n_mid == 2);
    for (int l = L - 1; l >= 0; l--) {
        struct level *v = &u->lv[l];
        int attn = (c->attn >> l) & 1;
        v->cu = ch;
        note_tensor(u, (size_t)(v->cu + v->ch) * v->H * v->W);
        snprintf(name, sizeof name, "up.%d", l);
        for (int j = 0; j < u->B; j++)
            add_block(u, &v->up[j], name, j, j ? v->ch : v->cu + v->ch, v->ch, v->H, v->W, attn);
        ch = v->ch;
        if (l == 0) break;
        snprintf(name, sizeof name, "up.%d.upsample", l);
        v->upsample = add_conv(u, name, ch, ch, 3, 1, u->lv[l - 1].H, u->lv[l - 1].W, 0);
    }
    u->norm_out = add_norm(u, "norm_out", ch);
    u->conv_out = add_conv(u, "conv_out", ch, c->channels, 3, 1, c->height, c->width, 1);
}

static dcl_status check_config(const dcl_unet_config *c) {
    if (c->channels < 1 || c->height < 1 || c->width < 1 || c->channels > 4096 ||
        c->height > 65536 || c->width > 65536)
        return dcl__fail(DCL_ERR_ARG, "unet: images of %d×%d×%d (C×H×W) are not supported",
                         c->channels, c->height, c->width);
    if (c->levels < 1 || c->levels > DCL_UNET_MAX_LEVELS)
        return dcl__fail(DCL_ERR_ARG, "unet: levels must be in [1, %d], got %d",
                         DCL_UNET_MAX_LEVELS, c->levels);
    int f = 1 << (c->levels - 1);
    if (c->height % f || c->width % f) {
        int fit = 1; // the most levels these images allow
        while (fit < DCL_UNET_MAX_LEVELS && c->height % (1 << fit) == 0 &&
               c->width % (1 << fit) == 0)
            fit++;
        int h = c->height / f * f, w = c->width / f * f;
        char resize[64] = "";
        if (h > 0 && w > 0) snprintf(resize, sizeof resize, " or resize the images to %d×%d", h, w);
        return dcl__fail(DCL_ERR_ARG,
                         "unet: height %d and width %d must be divisible by 2^(levels − 1) = %d "
                         "for %d levels; use --mult with at most %d level%s%s",
                         c->height, c->width, f, c->levels, fit, fit > 1 ? "s" : "", resize);
    }
    if (c->base < 1 || c->base > 4096)
        return dcl__fail(DCL_ERR_ARG, "unet: base channels must be in [1, 4096], got %d", c->base);
    if (c->groups < 1 || c->base % c->groups)
        return dcl__fail(DCL_ERR_ARG,
                         "unet: groups (--groups %d) must divide the base channels (--base %d); "
                         "use a divisor of %d",
                         c->groups, c->base, c->base);
    for (int l = 0; l < c->levels; l++) {
        if (c->mult[l] < 1 || c->mult[l] > 64)
            return dcl__fail(DCL_ERR_ARG, "unet: mult[%d] must be in [1, 64], got %d", l,
                             c->mult[l]);
        if (c->base * c->mult[l] % c->groups)
            return dcl__fail(DCL_ERR_ARG,
                             "unet: groups (%d) must divide the channels of level %d (%d·%d)",
                             c->groups, l, c->base, c->mult[l]);
    }
    if (c->res_blocks < 0 || c->res_blocks > DCL_UNET_MAX_RES_BLOCKS)
        return dcl__fail(DCL_ERR_ARG, "unet: res_blocks (--res-blocks) must be in [1, %d], got %d",
                         DCL_UNET_MAX_RES_BLOCKS, c->res_blocks);
    if (c->attn >> c->levels) {
        char have[128];
        dcl_unet_attn_heights(c, have, sizeof have);
        int l = c->levels;
        while (!((c->attn >> l) & 1)) l++;
        return dcl__fail(DCL_ERR_ARG,
                         "unet: attention (--attn) at level %d, but the network has %d level%s, "
                         "heights %s",
                         l, c->levels, c->levels > 1 ? "s" : "", have);
    }
    int heads = c->heads > 0 ? c->heads : 1;
    if (c->heads < 0 || c->heads > 4096)
        return dcl__fail(DCL_ERR_ARG, "unet: heads (--heads) must be in [1, 4096], got %d",
                         c->heads);
    for (int l = 0; l < c->levels; l++)
        if ((c->attn >> l) & 1 && c->base * c->mult[l] % heads)
            return dcl__fail(DCL_ERR_ARG,
                             "unet: %d heads (--heads) do not divide the %d channels at height %d; "
                             "use a divisor of %d",
                             heads, c->base * c->mult[l], c->height >> l, c->base * c->mult[l]);
    if (c->emb_dim < 2 || c->emb_dim % 2 || c->emb_dim > 65536)
        return dcl__fail(DCL_ERR_ARG, "unet: emb_dim must be even and in [2, 65536], got %d",
                         c->emb_dim);
    if (c->num_classes < 0 || c->num_classes > 1000000)
        return dcl__fail(DCL_ERR_ARG, "unet: num_classes must be in [0, 10^6], got %d",
                         c->num_classes);
    return DCL_OK;
}

void dcl_unet_attn_heights(const dcl_unet_config *c, char *buf, size_t size) {
    size_t n = 0;
    if (size) buf[0] = 0;
    for (int l = 0; l < c->levels && l < DCL_UNET_MAX_LEVELS && n < size; l++) {
        int k = snprintf(buf + n, size - n, "%s%d", l ? ", " : "", c->height >> l);
        if (k < 0) break;
        n += (size_t)k;
    }
}

void dcl_unet_config_default(dcl_unet_config *c, int C, int H, int W) {
    memset(c, 0, sizeof *c);
    c->channels = C, c->height = H, c->width = W;
    // Sized for a CPU: base 16 trains on Fashion-MNIST at ~115 images/s on 2 idle cores and
    // gives recognisable classes after ~800 steps of 64 (README); base 32 is ~2.5× slower.
    c->base = 16, c->levels = 3;
    c->mult[0] = 1, c->mult[1] = 2, c->mult[2] = 2, c->mult[3] = 2, c->mult[4] = 2;
    c->groups = 8, c->emb_dim = 16, c->num_classes = 0;
    c->res_blocks = 1, c->attn = 0, c->heads = 1;
}

double dcl_unet_flops(const dcl_unet_config *c) {
    if (!c || check_config(c) != DCL_OK) return 0;
    dcl_unet *u = calloc(1, sizeof *u);
    if (!u) return 0;
    u->cfg = *c;
    plan(u);
    double f = u->flops;
    free(u);
    return f;
}

dcl_status dcl_unet_param_count(const dcl_unet_config *c, size_t *count) {
    *count = 0;
    TRY(check_config(c));
    dcl_unet *u = calloc(1, sizeof *u);
    if (!u) return dcl__fail(DCL_ERR_NOMEM, "unet: out of host memory");
    u->cfg = *c;
    plan(u);
    for (int i = 0; i < u->count; i++) *count += u->views[i].n;
    free(u);
    return DCL_OK;
}

static dcl_status col_budget(size_t *out);
static void layout_sizes(dcl_unet *u, const dcl_device *dev);

dcl_status dcl_unet_memory_bytes(const dcl_unet_config *c, const dcl_device *dev, size_t batch,
                                 dcl_unet_memory *m) {
    memset(m, 0, sizeof *m);
    TRY(check_config(c));
    if (batch < 1) return dcl__fail(DCL_ERR_ARG, "unet: the batch must be at least 1");
    dcl_unet *u = calloc(1, sizeof *u);
    if (!u) return dcl__fail(DCL_ERR_NOMEM, "unet: out of host memory");
    u->cfg = *c, u->max_batch = batch;
    dcl_status s = col_budget(&u->col_budget);
    if (s == DCL_OK) {
        plan(u);
        layout_sizes(u, dev);
        size_t n = 0;
        for (int i = 0; i < u->count; i++) n += (u->views[i].n + 15) & ~(size_t)15;
        m->params = 4 * (uint64_t)n;
        m->saved = 4 * (uint64_t)u->n_saved, m->work = 4 * (uint64_t)u->n_work;
        m->columns = 4 * ((uint64_t)u->n_cols + u->n_planes);
        m->batch = 4 * 7 * (uint64_t)batch * (uint64_t)c->channels * c->height * c->width;
        m->total = 5 * m->params + m->saved + m->work + m->columns + m->batch;
        uint64_t big[] = {m->params, m->saved, m->work, m->columns, m->batch / 7};
        for (size_t i = 0; i < sizeof big / sizeof big[0]; i++)
            if (big[i] > m->largest) m->largest = big[i];
    }
    free(u);
    return s;
}

// Whether m fits a device with global memory `global` and buffers of at most `single` bytes.
static int fits_device(const dcl_unet_memory *m, uint64_t global, uint64_t single) {
    return m->total <= global && m->largest <= single;
}

dcl_status dcl_unet_check_memory(const dcl_unet_config *c, const dcl_device *dev, size_t batch,
                                 size_t *fits) {
    dcl_unet_memory m;
    if (fits) *fits = batch;
    TRY(dcl_unet_memory_bytes(c, dev, batch, &m));
    if (!dev) return DCL_OK;
    const dcl_device_info *info = dcl_device_get_info(dev);
    // The kernels index buffers with 32-bit element counts (alloc() below).
    uint64_t single = info->max_alloc, global = info->global_mem,
             kernels = 4 * (uint64_t)UINT32_MAX;
    if (single > kernels) single = kernels;
    if (fits_device(&m, global, single)) return DCL_OK;
    // The largest batch that fits: memory grows with the batch.
    size_t lo = 0, hi = batch;
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        dcl_unet_memory t;
        if (dcl_unet_memory_bytes(c, dev, mid, &t) == DCL_OK && fits_device(&t, global, single))
            lo = mid;
        else hi = mid;
    }
    if (fits) *fits = lo;
    char what[96];
    if (lo) snprintf(what, sizeof what, "use a batch of at most %zu", lo);
    else snprintf(what, sizeof what, "no batch fits: use a smaller --base or --mult");
    const double MiB = 1048576.0;
    return dcl__fail(DCL_ERR_ARG,
                     "unet: training at batch %zu is too large for device %s: it needs %.1f MiB "
                     "(weights, gradients, EMA and Adam moments %.1f MiB, saved activations %.1f "
                     "MiB, scratch %.1f MiB, batch %.1f MiB; largest buffer %.1f MiB), the device "
                     "has %.1f MiB and at most %.1f MiB per buffer; %s",
                     batch, info->spec, (double)m.total / MiB, 5.0 * (double)m.params / MiB,
                     (double)m.saved / MiB, (double)(m.work + m.columns) / MiB,
                     (double)m.batch / MiB, (double)m.largest / MiB, (double)global / MiB,
                     (double)single / MiB, what);
}

// Samples per chunk of a convolution with per_sample column elements, for a batch of N.
static size_t chunk(const dcl_unet *u, size_t N, size_t per_sample) {
    size_t n = u->col_budget / per_sample;
    if (n < 1) n = 1;
    return n < N ? n : N;
}

// Reserves n elements at *top (16-element aligned, as the arena does) and returns their offset.
static size_t take(size_t *top, size_t n) {
    size_t off = *top;
    *top += (n + 15) & ~(size_t)15;
    return off;
}

static void layout_res(dcl_unet *u, struct res *r, size_t *top) {
    size_t B = u->max_batch, R = (size_t)r->H * r->W;
    r->h1 = take(top, B * r->cin * R);
    r->c1 = take(top, B * r->cout * R);
    r->h2 = take(top, B * r->cout * R);
    r->s1 = take(top, B * r->cin * R), r->s2 = take(top, B * r->cout * R);
    r->out = take(top, B * r->cout * R);
    r->mean1 = take(top, B * u->G), r->rstd1 = take(top, B * u->G);
    r->mean2 = take(top, B * u->G), r->rstd2 = take(top, B * u->G);
}

static void layout_block(dcl_unet *u, struct block *b, size_t *top) {
    layout_res(u, &b->res, top);
    if (!b->has_attn) return;
    struct attn *a = &b->attn;
    size_t B = u->max_batch, R = (size_t)a->H * a->W, c = (size_t)a->c;
    a->hn = take(top, B * c * R);
    a->mean = take(top, B * u->G), a->rstd = take(top, B * u->G);
    a->q = take(top, B * 3 * c * R);
    a->ao = take(top, B * c * R);
    a->lse = take(top, B * (size_t)u->heads * R);
    a->out = take(top, B * c * R);
}

// Offsets of every saved activation and scratch tensor for max_batch samples, and the elements of
// each buffer, for convolutions on dev (NULL: as on the CPU reference). No device work.
static void layout_sizes(dcl_unet *u, const dcl_device *dev) {
    const dcl_unet_config *c = &u->cfg;
    size_t B = u->max_batch, T = u->T, R0 = (size_t)c->height * c->width, top = 0;
    u->se = take(&top, B * (size_t)c->emb_dim);
    u->z1 = take(&top, B * T), u->s1 = take(&top, B * T);
    u->temb = take(&top, B * T), u->ta = take(&top, B * T);
    u->xin = take(&top, B * (size_t)c->channels * R0);
    u->lab = take(&top, B), u->null_lab = take(&top, B);
    u->x0 = take(&top, B * (size_t)c->base * R0);
    for (int l = 0; l < c->levels; l++) {
        struct level *v = &u->lv[l];
        for (int j = 0; j < u->B; j++) layout_block(u, &v->down[j], &top);
        if (l < c->levels - 1)
            v->dn = take(&top, B * (size_t)v->ch * v->downsample.s.Ho * v->downsample.s.Wo);
        v->cat = take(&top, B * (size_t)(v->cu + v->ch) * v->H * v->W);
        for (int j = 0; j < u->B; j++) layout_block(u, &v->up[j], &top);
    }
    for (int j = 0; j < u->n_mid; j++) layout_block(u, &u->mid[j], &top);
    u->hout = take(&top, B * (size_t)u->lv[0].ch * R0);
    u->mean_out = take(&top, B * u->G), u->rstd_out = take(&top, B * u->G);
    u->sout = take(&top, B * (size_t)u->lv[0].ch * R0);
    u->n_saved = top;

    top = 0;
    size_t big = B * u->max_tensor;
    u->ga = take(&top, big), u->gb = take(&top, big);
    u->t1 = take(&top, big), u->t2 = take(&top, big), u->s = take(&top, big);
    u->e = take(&top, B * u->max_cout);
    u->dta = take(&top, B * T), u->tt1 = take(&top, B * T), u->tt2 = take(&top, B * T);
    for (int l = 0; l < c->levels; l++)
        u->lv[l].dskip = take(&top, B * (size_t)u->lv[l].ch * u->lv[l].H * u->lv[l].W);
    u->n_work = top;

    size_t col = 0, out = 0, planes = 0;
    u->columns = dev && dcl__conv2d_uses_columns(dev);
    for (int i = 0; i < u->n_convs && u->columns; i++) {
        const dcl__conv2d_shape *s = &u->conv_shape[i];
        size_t n = chunk(u, B, dcl__conv2d_col_size(s)), nc = n * dcl__conv2d_col_size(s);
        size_t no = n * dcl__conv2d_out_size(s), np = n * dcl__conv2d_plane_size(s);
        if (dcl__conv2d_whole(dev, s)) planes = np > planes ? np : planes;
        else col = nc > col ? nc : col, out = no > out ? no : out;
    }
    top = 0; // stays 0 on the CPU reference, whose convolutions need no columns
    u->col = take(&top, col), u->cnhw = take(&top, out);
    u->n_cols = top ? top : 1;
    u->n_planes = planes;
}

static dcl_status alloc(dcl_buffer **buf, dcl_unet *u, size_t n, const char *name) {
    if (n >= ((size_t)1 << 32))
        return dcl__fail(DCL_ERR_ARG,
                         "unet: %s for max_batch %zu need %zu elements, beyond the kernels' 2^32; "
                         "use a smaller batch",
                         name, u->max_batch, n);
    return dcl_buffer_alloc(buf, u->dev, n, name);
}

// The offsets and the buffers for max_batch samples.
static dcl_status layout(dcl_unet *u) {
    const dcl_unet_config *c = &u->cfg;
    size_t B = u->max_batch;
    // A batch this large would overflow the size arithmetic of layout_sizes on a 32-bit host
    // before alloc() could refuse it.
    if ((double)B * (double)u->max_tensor * 4.0 >= 4294967296.0)
        return dcl__fail(DCL_ERR_ARG,
                         "unet: max_batch %zu × %zu elements per sample exceeds the kernels' 2^32 "
                         "elements; use a smaller batch",
                         B, u->max_tensor);
    layout_sizes(u, u->dev);
    TRY(alloc(&u->saved, u, u->n_saved, "unet.saved"));
    TRY(alloc(&u->work, u, u->n_work, "unet.work"));
    TRY(alloc(&u->cols, u, u->n_cols, "unet.columns"));

    // The null class for forwards without labels: uint32 bits K, written once.
    if (c->num_classes > 0) {
        uint32_t *k = malloc(B * sizeof *k);
        if (!k) return dcl__fail(DCL_ERR_NOMEM, "unet: out of host memory");
        for (size_t i = 0; i < B; i++) k[i] = (uint32_t)c->num_classes;
        dcl_status s = dcl_buffer_write(u->saved, u->null_lab, B, k);
        free(k);
        TRY(s);
    }
    return DCL_OK;
}

// N(0, 1) for view k from Philox stream (seed, DCL_RNG_INIT, k), computed on the host: device
// normals go through the device's log, sin and cos (Box-Muller) and may differ in the last bits,
// while every device must start from the same weights. Init only, and the table is small.
static dcl_status init_normal(dcl_unet *u, int k, uint64_t seed) {
    size_t n = u->params.views[k].n;
    float *h = malloc(n * sizeof *h);
    if (!h) return dcl__fail(DCL_ERR_NOMEM, "unet: out of host memory");
    for (size_t i = 0; i < n; i++) h[i] = dcl_rng_normal_at(seed, DCL_RNG_INIT, (uint32_t)k, i);
    dcl_status s = dcl_buffer_write(u->params.buf, u->params.views[k].off, n, h);
    free(h);
    return s;
}

// View k takes Philox stream (seed, DCL_RNG_INIT, step k), bitwise equal on every device; uniform
// views use the gradient arena as scratch (zeroed after).
static dcl_status init_params(dcl_unet *u, uint64_t seed) {
    for (int k = 0; k < u->params.count; k++) {
        size_t n = u->params.views[k].n;
        const struct view_info *v = &u->info[k];
        dcl_ptr w = dcl_arena_ptr(&u->params, k), ones = dcl_arena_ptr(&u->grads, k);
        switch (v->kind) {
        case INIT_UNIFORM:
            TRY(dcl__init_uniform(u->dev, w, ones, v->bound, seed, (uint32_t)k, n));
            break;
        case INIT_NORMAL: break; // below
        case INIT_ONE: TRY(dcl_fill(u->dev, w, 1.0f, n)); break;
        case INIT_ZERO: TRY(dcl_fill(u->dev, w, 0.0f, n)); break;
        }
    }
    TRY(dcl_fill(u->dev, dcl_at(u->grads.buf, 0), 0.0f, u->grads.n));
    // The host writes come last: under Oclgrind, device values computed after a buffer write and
    // then read by another kernel were reported as uninitialised.
    for (int k = 0; k < u->params.count; k++)
        if (u->info[k].kind == INIT_NORMAL) TRY(init_normal(u, k, seed));
    return DCL_OK;
}

static dcl_status col_budget(size_t *out) {
    const char *env = getenv("DIFFCL_UNET_COL_BUDGET");
    *out = DCL_UNET_COL_BUDGET;
    if (!env || !*env) return DCL_OK;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(env, &end, 10);
    if (errno || *end || v < 1 || env[0] == '-')
        return dcl__fail(DCL_ERR_ARG,
                         "DIFFCL_UNET_COL_BUDGET='%s': expected a positive number of elements",
                         env);
    *out = (size_t)v;
    return DCL_OK;
}

dcl_status dcl_unet_init(dcl_unet **out, dcl_device *dev, const dcl_unet_config *cfg, uint64_t seed,
                         size_t max_batch) {
    *out = NULL;
    if (!dev || !cfg) return dcl__fail(DCL_ERR_ARG, "unet: no device or no configuration");
    TRY(check_config(cfg));
    if (max_batch < 1) return dcl__fail(DCL_ERR_ARG, "unet: max_batch must be at least 1");
    dcl_unet *u = calloc(1, sizeof *u);
    if (!u) return dcl__fail(DCL_ERR_NOMEM, "unet: out of host memory");
    u->cfg = *cfg, u->dev = dev, u->max_batch = max_batch;
    dcl_status s = col_budget(&u->col_budget);
    if (s == DCL_OK) {
        plan(u);
        s = dcl_arena_init(&u->params, dev, "unet.params", u->views, u->count);
    }
    if (s == DCL_OK) s = dcl_arena_init_like(&u->grads, &u->params, "unet.grads");
    if (s == DCL_OK) s = init_params(u, seed);
    if (s == DCL_OK) s = layout(u);
    if (s != DCL_OK) {
        dcl_unet_free(u);
        return s;
    }
    *out = u;
    return DCL_OK;
}

void dcl_unet_free(dcl_unet *u) {
    if (!u) return;
    dcl_buffer_free(u->cols);
    dcl_buffer_free(u->work);
    dcl_buffer_free(u->saved);
    dcl_arena_free(&u->grads);
    dcl_arena_free(&u->params);
    free(u);
}

const dcl_unet_config *dcl_unet_get_config(const dcl_unet *u) { return &u->cfg; }
dcl_arena *dcl_unet_params(dcl_unet *u) { return &u->params; }
dcl_arena *dcl_unet_grads(dcl_unet *u) { return &u->grads; }

int dcl_unet_tensor_shape(const dcl_unet *u, int i, uint64_t shape[4]) {
    if (i < 0 || i >= u->params.count) return 0;
    for (int d = 0; d < u->info[i].ndim; d++) shape[d] = u->info[i].shape[d];
    return u->info[i].ndim;
}

size_t dcl_unet_device_bytes(const dcl_unet *u) {
    size_t n = u->params.n + u->grads.n + dcl_buffer_size(u->saved) + dcl_buffer_size(u->work) +
               dcl_buffer_size(u->cols);
    return 4 * n;
}

// ---- forward --------------------------------------------------------------------------------------

static dcl_ptr saved(const dcl_unet *u, size_t off) { return dcl_at(u->saved, off); }
static dcl_ptr work(const dcl_unet *u, size_t off) { return dcl_at(u->work, off); }
static dcl_ptr param(const dcl_arena *p, int view) { return dcl_arena_ptr(p, view); }

// A view of the columns scratch at off, or an empty view when convolutions do not use it.
static dcl_ptr cols(const dcl_unet *u, size_t off) {
    dcl_ptr none = {NULL, 0};
    return u->columns ? dcl_at(u->cols, off) : none;
}

// The layers with u's scratch: im2col columns and the GEMM's CNHW output in u->cols, convolutions
// in chunks of samples whose columns fit the budget. conv_add also adds sbias (N, co) per sample
// and channel and res (N, co, Ho, Wo) in the pass that writes out (either left out: buf NULL).
static dcl_status conv_add(dcl_unet *u, const dcl_arena *p, const struct conv *c, dcl_ptr out,
                           dcl_ptr in, dcl_ptr sbias, dcl_ptr res, size_t N) {
    return dcl__conv2d_forward(u->dev, out, cols(u, u->col), cols(u, u->cnhw), in, param(p, c->w),
                               param(p, c->b), sbias, res, N, &c->s,
                               chunk(u, N, dcl__conv2d_col_size(&c->s)));
}

static dcl_status conv_forward(dcl_unet *u, const dcl_arena *p, const struct conv *c, dcl_ptr out,
                               dcl_ptr in, size_t N) {
    dcl_ptr none = {NULL, 0};
    return conv_add(u, p, c, out, in, none, none, N);
}

static dcl_status linear_forward(dcl_unet *u, const dcl_arena *p, const struct linear *l,
                                 dcl_ptr out, dcl_ptr in, size_t N) {
    return dcl__linear_forward(u->dev, out, in, param(p, l->w), param(p, l->b), N, (size_t)l->in,
                               (size_t)l->out);
}

static dcl_status res_forward(dcl_unet *u, const dcl_arena *p, const struct res *r, dcl_ptr x,
                              size_t N) {
    dcl_device *dev = u->dev;
    size_t R = (size_t)r->H * r->W, cin = (size_t)r->cin, cout = (size_t)r->cout;
    dcl_ptr h1 = saved(u, r->h1), c1 = saved(u, r->c1), h2 = saved(u, r->h2);
    dcl_ptr out = saved(u, r->out), s1 = saved(u, r->s1), s2 = saved(u, r->s2), e = work(u, u->e);
    TRY(dcl_group_norm_forward(dev, h1, saved(u, r->mean1), saved(u, r->rstd1), x,
                               param(p, r->norm1.w), param(p, r->norm1.b), N, cin, R, u->G,
                               GN_EPS));
    TRY(dcl_silu_forward(dev, s1, h1, N * cin * R));
    // e (N, cout) = SiLU(temb) W_embᵀ + b_emb, added to every position of its sample and channel
    // of c1 = conv1(s1) + b1 + e.
    dcl_ptr none = {NULL, 0};
    TRY(linear_forward(u, p, &r->emb, e, saved(u, u->ta), N));
    TRY(conv_add(u, p, &r->conv1, c1, s1, e, none, N));
    TRY(dcl_group_norm_forward(dev, h2, saved(u, r->mean2), saved(u, r->rstd2), c1,
                               param(p, r->norm2.w), param(p, r->norm2.b), N, cout, R, u->G,
                               GN_EPS));
    TRY(dcl_silu_forward(dev, s2, h2, N * cout * R));
    // out = conv2(s2) + b2 + x (or skip(x) + b_skip, made first so that conv2's pass adds it).
    if (r->has_skip) {
        TRY(conv_forward(u, p, &r->skip, work(u, u->ga), x, N));
        x = work(u, u->ga);
    }
    return conv_add(u, p, &r->conv2, out, s2, none, x, N);
}

// Attention block a with input x (N, c, R): out = x + proj(Attention(qkv(GroupNorm(x)))).
static dcl_status attn_forward(dcl_unet *u, const dcl_arena *p, const struct attn *a, dcl_ptr x,
                               size_t N) {
    dcl_device *dev = u->dev;
    size_t R = (size_t)a->H * a->W, c = (size_t)a->c;
    dcl_ptr hn = saved(u, a->hn), q = saved(u, a->q), ao = saved(u, a->ao), none = {NULL, 0};
    TRY(dcl_group_norm_forward(dev, hn, saved(u, a->mean), saved(u, a->rstd), x,
                               param(p, a->norm.w), param(p, a->norm.b), N, c, R, u->G, GN_EPS));
    TRY(conv_forward(u, p, &a->qkv, q, hn, N));
    TRY(dcl_attention_forward(dev, ao, saved(u, a->lse), q, N, (size_t)u->heads, c, R));
    return conv_add(u, p, &a->proj, saved(u, a->out), ao, none, x, N);
}

static dcl_status block_forward(dcl_unet *u, const dcl_arena *p, const struct block *b, dcl_ptr x,
                                size_t N) {
    TRY(res_forward(u, p, &b->res, x, N));
    return b->has_attn ? attn_forward(u, p, &b->attn, saved(u, b->res.out), N) : DCL_OK;
}

// out (N, C, H, W) = the network with the weights of p (u's layout).
static dcl_status forward(dcl_unet *u, const dcl_arena *p, dcl_ptr out, dcl_ptr x, dcl_ptr t,
                          dcl_ptr labels, size_t N) {
    const dcl_unet_config *c = &u->cfg;
    dcl_device *dev = u->dev;
    size_t T = u->T, E = (size_t)c->emb_dim, L = (size_t)c->levels;
    size_t R0 = (size_t)c->height * c->width;
    int B = u->B;
    if (N == 0) return DCL_OK;
    TRY(dcl_copy(dev, saved(u, u->xin), x, N * (size_t)c->channels * R0));

    // Time path: temb = Linear(SiLU(Linear(sinusoid(t)))) [+ class_emb[label]]; ta = SiLU(temb).
    dcl_ptr se = saved(u, u->se), z1 = saved(u, u->z1), s1 = saved(u, u->s1);
    dcl_ptr temb = saved(u, u->temb);
    TRY(dcl_time_embedding(dev, se, t, N, E));
    TRY(linear_forward(u, p, &u->time0, z1, se, N));
    TRY(dcl_silu_forward(dev, s1, z1, N * T));
    TRY(linear_forward(u, p, &u->time2, temb, s1, N));
    if (u->class_emb >= 0) {
        // Labels are uint32 bits; dcl_copy moves them without arithmetic.
        dcl_ptr lab = saved(u, u->lab), ce = work(u, u->tt1);
        TRY(dcl_copy(dev, lab, labels.buf ? labels : saved(u, u->null_lab), N));
        TRY(dcl_embedding_forward(dev, ce, param(p, u->class_emb), lab, N,
                                  (size_t)c->num_classes + 1, T));
        TRY(dcl_axpby(dev, temb, temb, ce, 1.0f, 1.0f, N * T));
    }
    TRY(dcl_silu_forward(dev, saved(u, u->ta), temb, N * T));

    TRY(conv_forward(u, p, &u->conv_in, saved(u, u->x0), saved(u, u->xin), N));
    dcl_ptr h = saved(u, u->x0);
    for (size_t l = 0; l < L; l++) {
        struct level *v = &u->lv[l];
        for (int j = 0; j < B; j++) {
            TRY(block_forward(u, p, &v->down[j], h, N));
            h = saved(u, block_out(&v->down[j]));
        }
        if (l == L - 1) break;
        TRY(conv_forward(u, p, &v->downsample, saved(u, v->dn), h, N));
        h = saved(u, v->dn);
    }
    for (int j = 0; j < u->n_mid; j++) {
        TRY(block_forward(u, p, &u->mid[j], h, N));
        h = saved(u, block_out(&u->mid[j]));
    }
    for (size_t l = L; l-- > 0;) {
        struct level *v = &u->lv[l];
        size_t R = (size_t)v->H * v->W;
        TRY(dcl_concat_channels(dev, saved(u, v->cat), h, saved(u, block_out(&v->down[B - 1])), N,
                                (size_t)v->cu, (size_t)v->ch, R));
        h = saved(u, v->cat);
        for (int j = 0; j < B; j++) {
            TRY(block_forward(u, p, &v->up[j], h, N));
            h = saved(u, block_out(&v->up[j]));
        }
        if (l == 0) break;
        // The next level's input: conv3×3(upsample2x(h)) in gb, consumed by its concat.
        dcl_ptr s = work(u, u->s);
        TRY(dcl_upsample2x_forward(dev, s, h, N, (size_t)v->ch, (size_t)v->H, (size_t)v->W));
        TRY(conv_forward(u, p, &v->upsample, work(u, u->gb), s, N));
        h = work(u, u->gb);
    }
    size_t ch0 = (size_t)u->lv[0].ch;
    TRY(dcl_group_norm_forward(dev, saved(u, u->hout), saved(u, u->mean_out), saved(u, u->rstd_out),
                               h, param(p, u->norm_out.w), param(p, u->norm_out.b), N, ch0, R0,
                               u->G, GN_EPS));
    TRY(dcl_silu_forward(dev, saved(u, u->sout), saved(u, u->hout), N * ch0 * R0));
    return conv_forward(u, p, &u->conv_out, out, saved(u, u->sout), N);
}

static dcl_status check_batch(const dcl_unet *u, const char *what, size_t N) {
    if (N > u->max_batch)
        return dcl__fail(DCL_ERR_ARG,
                         "unet %s: batch of %zu images exceeds the max_batch of %zu the model was "
                         "created with",
                         what, N, u->max_batch);
    return DCL_OK;
}

dcl_status dcl_unet_forward(dcl_unet *u, const dcl_arena *params, dcl_ptr out, dcl_ptr x, dcl_ptr t,
                            dcl_ptr labels, size_t N) {
    TRY(check_batch(u, "forward", N));
    if (params && params != &u->params)
        TRY(dcl__check_param_layout(params, &u->params, u->dev, "unet forward"));
    u->saved_n = 0;
    TRY(forward(u, params ? params : &u->params, out, x, t, labels, N));
    // Only a forward with the model's own weights leaves activations backward may use.
    if (!params || params == &u->params) u->saved_n = N;
    return DCL_OK;
}

// ---- backward -------------------------------------------------------------------------------------

// Given dy (N, co, Ho, Wo) for conv(in) with the model's weights: db += Σ dy, dW += its gradient
// and, when dx.buf is set, dx (N, ci, H, W) = the input's gradient (overwrites). nn/layers.h.
static dcl_status conv_backward(dcl_unet *u, const struct conv *c, dcl_ptr dy, dcl_ptr in,
                                dcl_ptr dx, size_t N) {
    return dcl__conv2d_backward(u->dev, dx, param(&u->grads, c->w), param(&u->grads, c->b),
                                cols(u, u->col), cols(u, u->cnhw), dy, in, param(&u->params, c->w),
                                N, &c->s, chunk(u, N, dcl__conv2d_col_size(&c->s)));
}

// Given dy (N, out) for l(in) with the model's weights: dW += dyᵀ in, db += Σ dy and, when
// dx.buf is set, dx (N, in) = dy W (DCL__GRAD_SET) or += (DCL__GRAD_ADD).
static dcl_status linear_backward(dcl_unet *u, const struct linear *l, dcl_ptr dy, dcl_ptr in,
                                  dcl_ptr dx, size_t N, enum dcl__grad_mode mode) {
    return dcl__linear_backward(u->dev, dx, param(&u->grads, l->w), param(&u->grads, l->b), dy, in,
                                param(&u->params, l->w), N, (size_t)l->in, (size_t)l->out, mode);
}

// Block r with input x: given dout (N, cout, R), writes dx (N, cin, R) (overwrites), accumulates
// its parameter gradients and adds the gradient of SiLU(temb) into dta. dout and dx are work
// buffers other than t1 and t2, which this uses as scratch (the SiLU outputs s1, s2 were saved).
static dcl_status res_backward(dcl_unet *u, const struct res *r, dcl_ptr x, dcl_ptr dout,
                               dcl_ptr dx, size_t N) {
    dcl_device *dev = u->dev;
    const dcl_arena *p = &u->params, *g = &u->grads;
    size_t R = (size_t)r->H * r->W, cin = (size_t)r->cin, cout = (size_t)r->cout;
    dcl_ptr h1 = saved(u, r->h1), c1 = saved(u, r->c1), h2 = saved(u, r->h2);
    dcl_ptr t1 = work(u, u->t1), t2 = work(u, u->t2), e = work(u, u->e);
    // out = conv2(s2) + skip(x), s2 = SiLU(h2)
    TRY(conv_backward(u, &r->conv2, dout, saved(u, r->s2), t1, N));
    // dx = the skip path's gradient (dout itself when there is no skip conv) + the main path's,
    // added at the end.
    if (r->has_skip) TRY(conv_backward(u, &r->skip, dout, x, dx, N));
    TRY(dcl_silu_backward(dev, t2, h2, t1, N * cout * R));
    TRY(dcl_group_norm_backward(dev, t1, param(g, r->norm2.w), param(g, r->norm2.b), t2, c1,
                                saved(u, r->mean2), saved(u, r->rstd2), param(p, r->norm2.w), N,
                                cout, R, u->G));
    // c1 = conv1(SiLU(h1)) + e[n, c] with e = ta W_embᵀ + b_emb.
    TRY(dcl_channel_bias_backward(dev, e, t1, N, cout, R, 1));
    TRY(linear_backward(u, &r->emb, e, saved(u, u->ta), work(u, u->dta), N, DCL__GRAD_ADD));
    TRY(conv_backward(u, &r->conv1, t1, saved(u, r->s1), t2, N));
    TRY(dcl_silu_backward(dev, t1, h1, t2, N * cin * R));
    TRY(dcl_group_norm_backward(dev, t2, param(g, r->norm1.w), param(g, r->norm1.b), t1, x,
                                saved(u, r->mean1), saved(u, r->rstd1), param(p, r->norm1.w), N,
                                cin, R, u->G));
    return dcl_axpby(dev, dx, r->has_skip ? dx : dout, t2, 1.0f, 1.0f, N * cin * R);
}

// Attention block a with input x: given dout (N, c, R), writes dx (N, c, R) (overwrites) and
// accumulates its parameter gradients; t1 and t2 are scratch, as in res_backward.
static dcl_status attn_backward(dcl_unet *u, const struct attn *a, dcl_ptr x, dcl_ptr dout,
                                dcl_ptr dx, size_t N) {
    dcl_device *dev = u->dev;
    const dcl_arena *p = &u->params, *g = &u->grads;
    size_t R = (size_t)a->H * a->W, c = (size_t)a->c;
    dcl_ptr t1 = work(u, u->t1), t2 = work(u, u->t2);
    dcl_ptr hn = saved(u, a->hn), ao = saved(u, a->ao);
    // out = x + proj(ao): t1 = d ao; t2 = d[q | k | v]; t1 = d hn; t2 = GroupNorm's dx.
    TRY(conv_backward(u, &a->proj, dout, ao, t1, N));
    TRY(dcl_attention_backward(dev, t2, t1, saved(u, a->q), ao, saved(u, a->lse), N,
                               (size_t)u->heads, c, R));
    TRY(conv_backward(u, &a->qkv, t2, hn, t1, N));
    TRY(dcl_group_norm_backward(dev, t2, param(g, a->norm.w), param(g, a->norm.b), t1, x,
                                saved(u, a->mean), saved(u, a->rstd), param(p, a->norm.w), N, c, R,
                                u->G));
    return dcl_axpby(dev, dx, dout, t2, 1.0f, 1.0f, N * c * R);
}

// The forward in reverse. The gradient flows through work buffers ga and gb: `g` holds the
// current one and `f` is free; each step writes f and swaps them.
#define SWAP() (tmp = g, g = f, f = tmp)

// Block b with input x: the gradient of its output in *g becomes its input's, in *g again.
static dcl_status block_backward(dcl_unet *u, const struct block *b, dcl_ptr x, dcl_ptr *gp,
                                 dcl_ptr *fp, size_t N) {
    dcl_ptr g = *gp, f = *fp, tmp;
    if (b->has_attn) {
        TRY(attn_backward(u, &b->attn, saved(u, b->res.out), g, f, N));
        SWAP();
    }
    TRY(res_backward(u, &b->res, x, g, f, N));
    SWAP();
    *gp = g, *fp = f;
    return DCL_OK;
}

dcl_status dcl_unet_backward(dcl_unet *u, dcl_ptr dout, size_t N) {
    const dcl_unet_config *c = &u->cfg;
    dcl_device *dev = u->dev;
    const dcl_arena *p = &u->params, *gr = &u->grads;
    size_t T = u->T, L = (size_t)c->levels;
    size_t R0 = (size_t)c->height * c->width, ch0 = (size_t)u->lv[0].ch;
    int B = u->B;
    TRY(check_batch(u, "backward", N));
    if (N == 0) return DCL_OK;
    if (u->saved_n != N)
        return dcl__fail(DCL_ERR_ARG,
                         "unet backward: needs a forward of the same batch with the model's own "
                         "weights first (batch %zu, last such forward %zu)",
                         N, u->saved_n);
    dcl_ptr g = work(u, u->ga), f = work(u, u->gb), tmp;
    dcl_ptr s = work(u, u->s), t1 = work(u, u->t1), t2 = work(u, u->t2);
    TRY(dcl_fill(dev, work(u, u->dta), 0.0f, N * T));

    // out = conv_out(SiLU(norm_out(q_0))), q_0 the top up block's output.
    dcl_ptr q0 = saved(u, block_out(&u->lv[0].up[B - 1]));
    TRY(conv_backward(u, &u->conv_out, dout, saved(u, u->sout), t1, N));
    TRY(dcl_silu_backward(dev, t2, saved(u, u->hout), t1, N * ch0 * R0));
    TRY(dcl_group_norm_backward(dev, g, param(gr, u->norm_out.w), param(gr, u->norm_out.b), t2, q0,
                                saved(u, u->mean_out), saved(u, u->rstd_out),
                                param(p, u->norm_out.w), N, ch0, R0, u->G));
    // Up path, top to bottom. At level l > 0, g arrives as the gradient of the upsample conv's
    // output (level l − 1's concatenated input h).
    for (size_t l = 0; l < L; l++) {
        struct level *v = &u->lv[l];
        size_t R = (size_t)v->H * v->W, ch = (size_t)v->ch;
        if (l > 0) {
            TRY(dcl_upsample2x_forward(dev, s, saved(u, block_out(&v->up[B - 1])), N, ch,
                                       (size_t)v->H, (size_t)v->W));
            TRY(conv_backward(u, &v->upsample, g, s, t1, N));
            TRY(dcl_upsample2x_backward(dev, f, t1, N, ch, (size_t)v->H, (size_t)v->W));
            SWAP();
        }
        for (int j = B; j-- > 0;)
            TRY(block_backward(u, &v->up[j], saved(u, j ? block_out(&v->up[j - 1]) : v->cat), &g,
                               &f, N));
        TRY(dcl_split_channels(dev, f, work(u, v->dskip), g, N, (size_t)v->cu, ch, R));
        SWAP();
    }
    // Middle, then the down path bottom to top; skip_l's gradient joins at the level's output.
    struct level *bottom = &u->lv[L - 1];
    for (int j = u->n_mid; j-- > 0;)
        TRY(block_backward(
            u, &u->mid[j],
            saved(u, j ? block_out(&u->mid[j - 1]) : block_out(&bottom->down[B - 1])), &g, &f, N));
    for (size_t l = L; l-- > 0;) {
        struct level *v = &u->lv[l];
        size_t n = N * (size_t)v->ch * v->H * v->W;
        TRY(dcl_axpby(dev, g, g, work(u, v->dskip), 1.0f, 1.0f, n));
        size_t in = l ? u->lv[l - 1].dn : u->x0;
        for (int j = B; j-- > 0;)
            TRY(block_backward(u, &v->down[j], saved(u, j ? block_out(&v->down[j - 1]) : in), &g,
                               &f, N));
        if (l == 0) break;
        struct level *above = &u->lv[l - 1];
        TRY(conv_backward(u, &above->downsample, g, saved(u, block_out(&above->down[B - 1])), f,
                          N));
        SWAP();
    }
    dcl_ptr none = {NULL, 0};
    TRY(conv_backward(u, &u->conv_in, g, saved(u, u->xin), none, N));
#undef SWAP

    // Time path: ta = SiLU(temb), temb = Linear2(SiLU(z1)) [+ class_emb[lab]], z1 = Linear0(se).
    dcl_ptr tt1 = work(u, u->tt1), tt2 = work(u, u->tt2);
    TRY(dcl_silu_backward(dev, tt1, saved(u, u->temb), work(u, u->dta), N * T));
    if (u->class_emb >= 0)
        TRY(dcl_embedding_backward(dev, param(gr, u->class_emb), tt1, saved(u, u->lab), N,
                                   (size_t)c->num_classes + 1, T));
    TRY(linear_backward(u, &u->time2, tt1, saved(u, u->s1), tt2, N, DCL__GRAD_SET));
    TRY(dcl_silu_backward(dev, tt1, saved(u, u->z1), tt2, N * T));
    return linear_backward(u, &u->time0, tt1, saved(u, u->se), none, N, DCL__GRAD_SET);
}
