// The MLP (host/nn/mlp.c): parameter layout and names, finite-difference gradients of the whole
// network on the CPU reference (ReLU and SiLU), and forward + backward on every usable OpenCL
// device against the CPU from the same seed. Exit 77 only when the build has OpenCL but the
// machine has no OpenCL platform.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"
#include "testlib_net.h" // struct data, struct net, net_loss, read_arena, normwise
#include "diffcl/device.h"
#include "diffcl/mlp.h"
#include "diffcl/ops.h"

// The harness's model (testlib_net.h) for an MLP configuration.
static int mlp_init(struct net *n, const char *spec, const dcl_mlp_config *cfg, uint64_t seed,
                    const struct data *d, size_t max_batch) {
    dcl_net_config c = {.kind = DCL_NET_MLP, .mlp = *cfg};
    return net_init(n, spec, &c, seed, d, max_batch);
}

// ---- layout --------------------------------------------------------------------------------------

static void check_layout(void) {
    dcl_device *dev;
    if (dcl_device_open(&dev, "cpu") != DCL_OK) {
        fprintf(stderr, "cannot open cpu: %s\n", dcl_last_error());
        check_failures++;
        return;
    }
    dcl_mlp_config cfg = {.dim = 2, .width = 8, .depth = 2, .emb_dim = 4, .act = DCL_ACT_RELU};
    dcl_mlp *m;
    CHECK(dcl_mlp_init(&m, dev, &cfg, 1, 4) == DCL_OK);
    const dcl_arena *p = dcl_mlp_params(m);
    static const char *names[] = {"layers.0.weight", "layers.0.bias",   "layers.1.weight",
                                  "layers.1.bias",   "layers.2.weight", "layers.2.bias"};
    static const uint64_t shapes[][2] = {{8, 6}, {8, 0}, {8, 8}, {8, 0}, {2, 8}, {2, 0}};
    CHECK_EQ(p->count, 6);
    CHECK_EQ(dcl_mlp_grads(m)->count, 6);
    for (int i = 0; i < 6 && i < p->count; i++) {
        uint64_t shape[2] = {0, 0};
        int nd = dcl_mlp_tensor_shape(m, i, shape);
        CHECK(strcmp(p->views[i].name, names[i]) == 0);
        CHECK_EQ(nd, i % 2 ? 1 : 2);
        CHECK_EQ(shape[0], shapes[i][0]);
        if (nd == 2) CHECK_EQ(shape[1], shapes[i][1]);
        CHECK_EQ(p->views[i].n, shape[0] * (nd == 2 ? shape[1] : 1));
    }
    uint64_t shape[2];
    CHECK_EQ(dcl_mlp_tensor_shape(m, 6, shape), 0);
    CHECK_EQ(dcl_mlp_tensor_shape(m, -1, shape), 0);
    CHECK(dcl_mlp_get_config(m)->width == 8);
    // The documented defaults (include/diffcl/mlp.h), and a model they make.
    dcl_mlp_config def;
    dcl_mlp_config_default(&def, 3);
    CHECK(def.dim == 3 && def.width == 128 && def.depth == 3 && def.emb_dim == 32);
    CHECK(def.act == DCL_ACT_RELU);
    dcl_mlp *dm = NULL;
    CHECK(dcl_mlp_init(&dm, dev, &def, 1, 4) == DCL_OK);
    dcl_mlp_free(dm);

    // Init: PyTorch's U(−1/√fan_in, 1/√fan_in), gradients zero.
    float *w = read_arena(p), *g = read_arena(dcl_mlp_grads(m));
    if (w && g) {
        for (int i = 0; i < p->count; i++) {
            double bound = 1.0 / sqrt(i < 2 ? 6.0 : 8.0), sum = 0;
            for (size_t j = 0; j < p->views[i].n; j++) {
                float v = w[p->views[i].off + j];
                CHECK(fabs(v) <= bound);
                sum += fabs(v);
            }
            // Mean |U(−b, b)| = b/2; loose bounds for the views of 8 to 64 values.
            double mean = sum / (double)p->views[i].n;
            if (p->views[i].n >= 8) CHECK(mean > 0.15 * bound && mean < 0.85 * bound);
        }
        for (size_t j = 0; j < p->n; j++) CHECK(g[j] == 0.0f);
    }
    free(w), free(g);

    // Bad configurations and batches fail with DCL_ERR_ARG and a message.
    dcl_mlp *bad = (dcl_mlp *)1;
    dcl_mlp_config odd = cfg;
    odd.emb_dim = 5;
    CHECK(dcl_mlp_init(&bad, dev, &odd, 1, 4) == DCL_ERR_ARG && bad == NULL);
    CHECK(strstr(dcl_last_error(), "emb_dim") != NULL);
    dcl_buffer *x, *t, *out;
    CHECK(dcl_buffer_alloc(&x, dev, 10, "x") == DCL_OK);
    CHECK(dcl_buffer_alloc(&t, dev, 5, "t") == DCL_OK);
    CHECK(dcl_buffer_alloc(&out, dev, 10, "out") == DCL_OK);
    CHECK(dcl_mlp_forward(m, dcl_at(out, 0), dcl_at(x, 0), dcl_at(t, 0), 5) == DCL_ERR_ARG);
    CHECK(strstr(dcl_last_error(), "max_batch") != NULL);
    CHECK(dcl_mlp_backward(m, dcl_at(out, 0), 3) == DCL_ERR_ARG); // no forward yet
    CHECK(dcl_mlp_forward(m, dcl_at(out, 0), dcl_at(x, 0), dcl_at(t, 0), 4) == DCL_OK);
    CHECK(dcl_mlp_backward(m, dcl_at(out, 0), 3) == DCL_ERR_ARG); // another batch
    CHECK(dcl_mlp_backward(m, dcl_at(out, 0), 4) == DCL_OK);
    dcl_arena other;
    dcl_arena_view v = {.name = "w", .n = 3};
    CHECK(dcl_arena_init(&other, dev, "other", &v, 1) == DCL_OK);
    CHECK(dcl_mlp_forward_with(m, &other, dcl_at(out, 0), dcl_at(x, 0), dcl_at(t, 0), 4) ==
          DCL_ERR_ARG);
    dcl_arena_free(&other);
    dcl_buffer_free(x), dcl_buffer_free(t), dcl_buffer_free(out);
    dcl_mlp_free(m);
    dcl_device_free(dev);
}

// ---- finite differences on the CPU -----------------------------------------------------------

// Every parameter's gradient against central differences of L. h = 1e-2: the float forward's
// rounding (~1e-7·Σ|w·out| ~ 1e-6) over 2h gives ~5e-5, and SiLU's truncation h²/6·|f'''| ~ 2e-5
// per unit of gradient: tol 1e-3 on |fd − g| / (0.1 + |g|). ReLU is piecewise linear, so its
// one-sided differences agree (to that rounding) unless a pre-activation crosses the kink within
// ±h; such elements are skipped (the standard gradient-check caveat), and at most a quarter may
// be. Backward accumulates: a second backward doubles every gradient.
static void check_fd(dcl_activation act) {
    const char *name = act == DCL_ACT_RELU ? "relu" : "silu";
    dcl_mlp_config cfg = {.dim = 2, .width = 5, .depth = 2, .emb_dim = 4, .act = act};
    struct data d;
    struct net n;
    if (!data_init(&d, 3, 2, 0, 7)) return;
    if (!mlp_init(&n, "cpu", &cfg, 99, &d, 4)) {
        data_free(&d);
        return;
    }
    float out[6];
    dcl_arena *p = dcl_mlp_params(n.m), *g = dcl_mlp_grads(n.m);
    double l0 = net_loss(&n, &d, out);
    CHECK(dcl_mlp_backward(n.m, dcl_at(n.dout, 0), d.N) == DCL_OK);
    float *grad = read_arena(g), *w = read_arena(p);
    CHECK(dcl_mlp_backward(n.m, dcl_at(n.dout, 0), d.N) == DCL_OK);
    float *grad2 = read_arena(g);
    double worst = 0;
    size_t count = 0, skipped = 0;
    if (grad && w && grad2) {
        for (int k = 0; k < p->count; k++) {
            for (size_t j = 0; j < p->views[k].n; j++) {
                size_t at = p->views[k].off + j;
                float keep = w[at], h = 1e-2f, vp = keep + h, vm = keep - h;
                double lp = net_loss_at(&n, &d, p, at, vp, out);
                double lm = net_loss_at(&n, &d, p, at, vm, out);
                CHECK(dcl_buffer_write(p->buf, at, 1, &keep) == DCL_OK);
                double fd = (lp - lm) / ((double)vp - (double)vm);
                double up = (lp - l0) / ((double)vp - keep), down = (l0 - lm) / (keep - (double)vm);
                CHECK_NEAR(grad2[at], 2.0 * grad[at], 1e-7, 1e-6);
                if (act == DCL_ACT_RELU && fabs(up - down) > 1e-3 * (0.1 + fabs(fd))) {
                    skipped++;
                    continue;
                }
                double err = fabs(fd - grad[at]) / (0.1 + fabs((double)grad[at]));
                if (err > worst) worst = err;
                if (err > 1e-3) {
                    fprintf(stderr, "mlp %s: %s[%zu]: backward %.7g, finite difference %.7g\n",
                            name, p->views[k].name, j, (double)grad[at], fd);
                    check_failures++;
                }
                count++;
            }
        }
    }
    CHECK(skipped * 4 <= count + skipped);
    printf("mlp %s: %zu parameters (%zu skipped at a ReLU kink), worst |fd − grad| / "
           "(0.1 + |grad|) = %.2e (tol 1e-03)\n",
           name, count, skipped, worst);
    free(grad), free(grad2), free(w);
    net_free(&n);
    data_free(&d);
}

// ---- OpenCL against the CPU --------------------------------------------------------------------

// Tolerance, norm-wise per tensor: the time embedding may differ by up to ~4.8e-4 absolute on a
// conforming device (exp, sin, cos; see the time_embedding case in host/check/) and GEMMs
// accumulate in different orders (~u·K). Propagated through four layers with PyTorch's init
// (gains below 1), outputs and gradients stay within ~1e-4 of their largest entry; 2e-3 leaves a
// margin for GEMM blockings. Measured on PoCL 3.1 (CLBlast vs OpenBLAS): 1.2e-7 (outputs) and
// 3.2e-7 (gradients).
#define MLP_TOL 2e-3

// The same model (same seed) on the CPU and on spec: parameters bitwise equal, forward outputs,
// gradients (after two accumulating backwards) and an EMA forward within MLP_TOL.
static void check_device(const char *spec, dcl_activation act, int small) {
    dcl_mlp_config cfg = {
        .dim = 3, .width = small ? 16 : 64, .depth = 3, .emb_dim = 16, .act = act};
    struct data d;
    struct net c = {0}, o = {0}; // o stays empty when c fails
    size_t N = small ? 13 : 67;
    if (!data_init(&d, N, (size_t)cfg.dim, 0, 123)) return;
    if (!mlp_init(&c, "cpu", &cfg, 2024, &d, N + 5) || !mlp_init(&o, spec, &cfg, 2024, &d, N + 5)) {
        net_free(&c), net_free(&o), data_free(&d);
        return;
    }
    struct net *nets[2] = {&c, &o};
    float *out[2] = {NULL, NULL}, *params[2] = {NULL, NULL}, *grads[2] = {NULL, NULL};
    float *ema_out[2] = {NULL, NULL};
    for (int k = 0; k < 2; k++) {
        struct net *n = nets[k];
        dcl_ptr x = dcl_at(n->x, 0), t = dcl_at(n->t, 0), y = dcl_at(n->out, 0);
        CHECK(dcl_mlp_forward(n->m, y, x, t, N) == DCL_OK);
        out[k] = malloc(N * d.D * sizeof(float));
        ema_out[k] = malloc(N * d.D * sizeof(float));
        if (!out[k] || !ema_out[k]) goto done;
        CHECK(dcl_buffer_read(n->out, 0, N * d.D, out[k]) == DCL_OK);
        CHECK(dcl_mlp_backward(n->m, dcl_at(n->dout, 0), N) == DCL_OK);
        CHECK(dcl_mlp_backward(n->m, dcl_at(n->dout, 0), N) == DCL_OK);
        params[k] = read_arena(dcl_mlp_params(n->m));
        grads[k] = read_arena(dcl_mlp_grads(n->m));
        // An "EMA" arena: the weights scaled by 0.75, through forward_with.
        dcl_arena ema;
        ema_init(&ema, n->dev, dcl_mlp_params(n->m));
        CHECK(dcl_mlp_forward_with(n->m, &ema, y, x, t, N) == DCL_OK);
        CHECK(dcl_buffer_read(n->out, 0, N * d.D, ema_out[k]) == DCL_OK);
        CHECK(dcl_mlp_backward(n->m, dcl_at(n->dout, 0), N) == DCL_ERR_ARG); // after forward_with
        dcl_arena_free(&ema);
    }
    if (!params[0] || !params[1] || !grads[0] || !grads[1]) goto done;
    const dcl_arena *p = dcl_mlp_params(c.m);
    CHECK(memcmp(params[0], params[1], p->n * sizeof(float)) == 0); // same init, bitwise
    double e_out = normwise(out[1], out[0], N * d.D),
           e_ema = normwise(ema_out[1], ema_out[0], N * d.D);
    double e_grad = grads_normwise(spec, grads[1], grads[0], p, MLP_TOL);
    CHECK(e_out <= MLP_TOL);
    CHECK(e_ema <= MLP_TOL);
    CHECK(e_grad <= MLP_TOL);
    // The EMA forward really used other weights.
    CHECK(normwise(ema_out[0], out[0], N * d.D) > 1e-3);
    printf("%-4s %-8s mlp %s N=%zu H=%d: params bitwise %s, out %.2e, ema out %.2e, grads %.2e "
           "(norm-wise, tol %.0e)\n",
           e_out <= MLP_TOL && e_ema <= MLP_TOL && e_grad <= MLP_TOL ? "ok" : "FAIL", spec,
           act == DCL_ACT_RELU ? "relu" : "silu", N, cfg.width,
           memcmp(params[0], params[1], p->n * sizeof(float)) == 0 ? "equal" : "DIFFER", e_out,
           e_ema, e_grad, MLP_TOL);
done:
    for (int k = 0; k < 2; k++) free(out[k]), free(ema_out[k]), free(params[k]), free(grads[k]);
    net_free(&c), net_free(&o);
    data_free(&d);
}

static void on_device(const char *spec, void *small) {
    check_device(spec, DCL_ACT_RELU, *(int *)small);
    check_device(spec, DCL_ACT_SILU, *(int *)small);
}

int main(int argc, char **argv) {
    int small = argc > 1 && strcmp(argv[1], "--small") == 0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    check_layout();
    check_fd(DCL_ACT_RELU);
    check_fd(DCL_ACT_SILU);
    // The harness against itself: a second CPU model must agree exactly.
    check_device("cpu", DCL_ACT_SILU, small);

    return check_opencl_devices(on_device, &small);
}
