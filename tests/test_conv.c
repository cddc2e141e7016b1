// A convolution layer built from the device ops as the U-Net builds it, on the CPU reference and on
// every usable OpenCL device, against a direct convolution in double on the host:
//   forward:  col = im2col(x); y' = W (Co, C·k·k) × col (CNHW); y = swap01(y') (NCHW); y += b
//   backward: db += Σ dy; dy' = swap01(dy); dW = dy' × colᵀ; dcol = Wᵀ × dy'; dx = col2im(dcol)
// and as the whole-convolution ops dcl_conv2d_forward and dcl_conv2d_backward (the CPU
// reference's path; OpenCL runs same convolutions on padded planes, cl/conv.cl). On each OpenCL
// device a second pass with DIFFCL_CL_GEMM=own (the GEMMs through cl/gemm.cl) checks that the
// padded-plane kernels give bitwise the forward output and input gradient of im2col + gemm_rows.
// Exit 77 only when the build has OpenCL but the machine has no OpenCL platform.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "diffcl/device.h"
#include "diffcl/ops.h"
#include "diffcl/rng.h" // dcl_rng_normal_at: inputs

struct shape {
    size_t N, C, Co, H, W, k, stride, pad;
};

// 3×3 pad 1 stride 1, 3×3 pad 1 stride 2 (odd and even sizes), 1×1; with C ≥ 4 (the CPU's tap
// GEMMs of stride-1 "same" convolutions, cpu_conv.c), 5×5 pad 2, 3×3 pad 1 on planes smaller than
// the kernel and 3×3 on 6×5; the full run adds a U-Net-sized layer (28×28, 16 → 32 channels),
// which --small (for Oclgrind) leaves out.
static const struct shape shapes[] = {
    {2, 3, 5, 7, 6, 3, 1, 1}, {2, 4, 3, 9, 8, 3, 2, 1},     {3, 6, 4, 5, 5, 1, 1, 0},
    {2, 5, 2, 4, 6, 5, 1, 2}, {2, 4, 3, 1, 1, 3, 1, 1},     {1, 4, 2, 2, 1, 5, 1, 2},
    {3, 4, 6, 6, 5, 3, 1, 1}, {4, 16, 32, 28, 28, 3, 1, 1},
};
#define N_SHAPES (sizeof shapes / sizeof *shapes)
#define N_SMALL (N_SHAPES - 1)

static const double U = 0x1p-24; // unit roundoff of float

// Host arrays of one layer; the direct results and, per element, S = Σ |terms| of its sum.
struct layer {
    struct shape s;
    size_t Ho, Wo, R, P, KK;     // R = Ho·Wo, P = N·R, KK = C·k·k
    float *x, *w, *b, *dy;       // (N, C, H, W), (Co, C, k, k), (Co), (N, Co, Ho, Wo)
    double *y, *sy, *dx, *sdx;   // forward out (N, Co, Ho, Wo), input gradient (N, C, H, W)
    double *dw, *sdw, *db, *sdb; // weight gradient (Co, KK), bias gradient (Co)
};

static float *draw(size_t n, uint32_t stream) {
    float *a = malloc(n * sizeof *a);
    if (a)
        for (size_t i = 0; i < n; i++) a[i] = dcl_rng_normal_at(7, DCL_RNG_TEST, stream, i);
    return a;
}

static double *zeros(size_t n) { return calloc(n ? n : 1, sizeof(double)); }

static void layer_free(struct layer *l) {
    free(l->x), free(l->w), free(l->b), free(l->dy);
    free(l->y), free(l->sy), free(l->dx), free(l->sdx);
    free(l->dw), free(l->sdw), free(l->db), free(l->sdb);
}

// The direct convolution and its gradients in double, with the magnitude sums for tolerances.
static int layer_init(struct layer *l, const struct shape *s) {
    memset(l, 0, sizeof *l);
    l->s = *s;
    l->Ho = (s->H + 2 * s->pad - s->k) / s->stride + 1;
    l->Wo = (s->W + 2 * s->pad - s->k) / s->stride + 1;
    l->R = l->Ho * l->Wo, l->P = s->N * l->R, l->KK = s->C * s->k * s->k;
    size_t nx = s->N * s->C * s->H * s->W, ny = s->N * s->Co * l->R, nw = s->Co * l->KK;
    l->x = draw(nx, 1), l->w = draw(nw, 2), l->b = draw(s->Co, 3), l->dy = draw(ny, 4);
    l->y = zeros(ny), l->sy = zeros(ny), l->dx = zeros(nx), l->sdx = zeros(nx);
    l->dw = zeros(nw), l->sdw = zeros(nw), l->db = zeros(s->Co), l->sdb = zeros(s->Co);
    if (!l->x || !l->w || !l->b || !l->dy || !l->y || !l->sy || !l->dx || !l->sdx || !l->dw ||
        !l->sdw || !l->db || !l->sdb)
        return 0;
    for (size_t n = 0; n < s->N; n++)
        for (size_t o = 0; o < s->Co; o++)
            for (size_t oy = 0; oy < l->Ho; oy++)
                for (size_t ox = 0; ox < l->Wo; ox++) {
                    size_t yi = ((n * s->Co + o) * l->Ho + oy) * l->Wo + ox;
                    double acc = l->b[o], mag = fabs(l->b[o]), g = l->dy[yi];
                    l->db[o] += g, l->sdb[o] += fabs(g);
                    for (size_t c = 0; c < s->C; c++)
                        for (size_t ky = 0; ky < s->k; ky++)
                            for (size_t kx = 0; kx < s->k; kx++) {
                                long iy = (long)(oy * s->stride + ky) - (long)s->pad;
                                long ix = (long)(ox * s->stride + kx) - (long)s->pad;
                                if (iy < 0 || ix < 0 || iy >= (long)s->H || ix >= (long)s->W)
                                    continue;
                                size_t xi =
                                    ((n * s->C + c) * s->H + (size_t)iy) * s->W + (size_t)ix;
                                size_t wi = (o * s->C + c) * s->k * s->k + ky * s->k + kx;
                                double t = (double)l->w[wi] * l->x[xi];
                                acc += t, mag += fabs(t);
                                l->dw[wi] += g * l->x[xi], l->sdw[wi] += fabs(g * l->x[xi]);
                                l->dx[xi] += g * l->w[wi], l->sdx[xi] += fabs(g * l->w[wi]);
                            }
                    l->y[yi] = acc, l->sy[yi] = mag;
                }
    return 1;
}

// Every element within (terms + 2)·u·S_i of the direct result: a float sum of `terms` rounded
// products in any order (blocked, tree, with or without FMA) errs by at most (terms + 1)·u·S_i to
// first order, whatever the device. Prints the worst error in units of u·S_i.
static void compare(const char *spec, const char *what, const struct shape *s, const float *got,
                    const double *want, const double *mag, size_t n, size_t terms) {
    double worst = 0;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double err = fabs((double)got[i] - want[i]), tol = (double)(terms + 2) * U * mag[i];
        if (mag[i] > 0 && err / (U * mag[i]) > worst) worst = err / (U * mag[i]);
        if (err <= tol + 1e-30 && !isnan(got[i])) continue;
        if (bad++ < 5)
            fprintf(stderr, "%s conv k%zu s%zu: %s[%zu] = %.9g, direct %.9g (tol %.3g)\n", spec,
                    s->k, s->stride, what, i, (double)got[i], want[i], tol);
    }
    check_failures += bad > 0;
    printf("%-4s %-8s conv k%zu s%zu p%zu (N %zu, C %zu -> %zu, %zux%zu) %-3s worst %.2f u·S "
           "(tol %zu u·S)\n",
           bad ? "FAIL" : "ok", spec, s->k, s->stride, s->pad, s->N, s->C, s->Co, s->H, s->W, what,
           worst, terms + 2);
}

// The second pass on OpenCL devices: GEMMs through cl/gemm.cl (DIFFCL_CL_GEMM=own).
static int own_gemm;

// Whether buffers a and b of n elements hold the same bits.
static void bitwise(const char *spec, const struct shape *s, const char *what, dcl_buffer *a,
                    dcl_buffer *b, size_t n) {
    float *ha = malloc(n * sizeof *ha), *hb = malloc(n * sizeof *hb);
    int same = ha && hb && dcl_buffer_read(a, 0, n, ha) == DCL_OK &&
               dcl_buffer_read(b, 0, n, hb) == DCL_OK && memcmp(ha, hb, n * sizeof *ha) == 0;
    check_failures += !same;
    printf("%-4s %-8s conv k%zu s%zu p%zu (N %zu, C %zu -> %zu, %zux%zu) %s bitwise (own GEMM)\n",
           same ? "ok" : "FAIL", spec, s->k, s->stride, s->pad, s->N, s->C, s->Co, s->H, s->W,
           what);
    free(ha), free(hb);
}

// Device buffers of one run, allocated by run_layer, freed by the caller after every shape ran.
enum { X, WT, B, COL, YC, Y, DY, DYC, DW, DB, DCOL, DX, Y2, DW2, DX2, N_BUF };

static void run_layer(dcl_device *dev, const char *spec, const struct layer *l, dcl_buffer **buf) {
    const struct shape *s = &l->s;
    size_t nx = s->N * s->C * s->H * s->W, ny = s->N * s->Co * l->R, nw = s->Co * l->KK;
    size_t ncol = l->KK * l->P;
    size_t len[N_BUF] = {nx, nw, s->Co, ncol, ny, ny, ny, ny, nw, s->Co, ncol, nx, ny, nw, nx};
    float *h = malloc((ny > nx ? (ny > nw ? ny : nw) : (nx > nw ? nx : nw)) * sizeof *h);
    dcl_status st = h ? DCL_OK : DCL_ERR_NOMEM;
    for (int i = 0; i < N_BUF && st == DCL_OK; i++)
        st = dcl_buffer_alloc(&buf[i], dev, len[i], "t");
    if (st != DCL_OK) {
        fprintf(stderr, "%s: allocation failed: %s\n", spec, dcl_last_error());
        check_failures++;
        goto done;
    }
#define P(i) dcl_at(buf[i], 0)
    const float zero = 0.0f;
    CHECK(dcl_buffer_write(buf[X], 0, nx, l->x) == DCL_OK);
    CHECK(dcl_buffer_write(buf[WT], 0, nw, l->w) == DCL_OK);
    CHECK(dcl_buffer_write(buf[B], 0, s->Co, l->b) == DCL_OK);
    CHECK(dcl_buffer_write(buf[DY], 0, ny, l->dy) == DCL_OK);
    CHECK(dcl_fill(dev, P(DB), zero, s->Co) == DCL_OK);
    // Forward.
    CHECK(dcl_im2col(dev, P(COL), P(X), s->N, s->C, s->H, s->W, s->k, s->stride, s->pad) == DCL_OK);
    CHECK(dcl_gemm(dev, P(YC), P(WT), P(COL), 0, 0, s->Co, l->P, l->KK, 1.0f, 0.0f) == DCL_OK);
    CHECK(dcl_swap01(dev, P(Y), P(YC), s->Co, s->N, l->R) == DCL_OK);
    CHECK(dcl_channel_bias_add(dev, P(Y), P(Y), P(B), s->N, s->Co, l->R, 0) == DCL_OK);
    // Backward.
    CHECK(dcl_channel_bias_backward(dev, P(DB), P(DY), s->N, s->Co, l->R, 0) == DCL_OK);
    CHECK(dcl_swap01(dev, P(DYC), P(DY), s->N, s->Co, l->R) == DCL_OK);
    CHECK(dcl_gemm(dev, P(DW), P(DYC), P(COL), 0, 1, s->Co, l->KK, l->P, 1.0f, 0.0f) == DCL_OK);
    CHECK(dcl_gemm(dev, P(DCOL), P(WT), P(DYC), 1, 0, l->KK, l->P, s->Co, 1.0f, 0.0f) == DCL_OK);
    CHECK(dcl_col2im(dev, P(DX), P(DCOL), s->N, s->C, s->H, s->W, s->k, s->stride, s->pad) ==
          DCL_OK);
    // The same as whole convolutions (dw accumulates onto 0).
    dcl_ptr none = {NULL, 0};
    CHECK(dcl_conv2d_forward(dev, P(Y2), P(X), P(WT), P(B), none, none, s->N, s->C, s->H, s->W,
                             s->Co, s->k, s->stride, s->pad) == DCL_OK);
    CHECK(dcl_fill(dev, P(DW2), zero, nw) == DCL_OK);
    CHECK(dcl_conv2d_backward(dev, P(DW2), P(DX2), P(DY), P(X), P(WT), s->N, s->C, s->H, s->W,
                              s->Co, s->k, s->stride, s->pad) == DCL_OK);
#undef P
    CHECK(dcl_buffer_read(buf[Y], 0, ny, h) == DCL_OK);
    compare(spec, "y", s, h, l->y, l->sy, ny, l->KK + 1);
    CHECK(dcl_buffer_read(buf[DB], 0, s->Co, h) == DCL_OK);
    compare(spec, "db", s, h, l->db, l->sdb, s->Co, l->P);
    CHECK(dcl_buffer_read(buf[DW], 0, nw, h) == DCL_OK);
    compare(spec, "dW", s, h, l->dw, l->sdw, nw, l->P);
    // dx: col2im adds up to k² partial sums of Co terms each.
    CHECK(dcl_buffer_read(buf[DX], 0, nx, h) == DCL_OK);
    compare(spec, "dx", s, h, l->dx, l->sdx, nx, s->Co + s->k * s->k);
    CHECK(dcl_buffer_read(buf[Y2], 0, ny, h) == DCL_OK);
    compare(spec, "y2", s, h, l->y, l->sy, ny, l->KK + 1);
    CHECK(dcl_buffer_read(buf[DW2], 0, nw, h) == DCL_OK);
    compare(spec, "dW2", s, h, l->dw, l->sdw, nw, l->P);
    CHECK(dcl_buffer_read(buf[DX2], 0, nx, h) == DCL_OK);
    compare(spec, "dx2", s, h, l->dx, l->sdx, nx, s->Co + s->k * s->k);
    if (own_gemm && s->stride == 1 && 2 * s->pad + 1 == s->k) {
        bitwise(spec, s, "y2 = y", buf[Y2], buf[Y], ny);
        bitwise(spec, s, "dx2 = dx", buf[DX2], buf[DX], nx);
    }
done:
    free(h);
}

static void check_device(const char *spec, int small) {
    dcl_device *dev;
    if (dcl_device_open(&dev, spec) != DCL_OK) {
        fprintf(stderr, "FAIL %s: cannot open: %s\n", spec, dcl_last_error());
        check_failures++;
        return;
    }
    // Each shape's buffers stay until every shape has run: Oclgrind 21.10 misreports buffers
    // created after others were released (cl/README.md), and the shapes grow.
    size_t n = small ? N_SMALL : N_SHAPES;
    dcl_buffer *buf[N_SHAPES][N_BUF] = {{0}};
    for (size_t i = 0; i < n; i++) {
        struct layer l;
        if (layer_init(&l, &shapes[i])) run_layer(dev, spec, &l, buf[i]);
        else fprintf(stderr, "out of host memory\n"), check_failures++;
        layer_free(&l);
    }
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < N_BUF; j++) dcl_buffer_free(buf[i][j]);
    dcl_device_free(dev);
}

static void on_device(const char *spec, void *small) { check_device(spec, *(int *)small); }

int main(int argc, char **argv) {
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0); // keep summaries and failure details in order
    check_device("cpu", small);
    int rc = check_opencl_devices(on_device, &small);
    if (rc == 77) return rc;
    own_gemm = 1;
    if (setenv("DIFFCL_CL_GEMM", "own", 1) != 0) return 1;
    int rc2 = check_opencl_devices(on_device, &small);
    return rc ? rc : rc2;
}
