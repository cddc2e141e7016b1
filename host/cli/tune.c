// `diffcl tune`: searches CLBlast's GEMM parameters and diffcl's work-group size for each OpenCL
// device (dcl_device_tune) and stores them where later runs find them.
#define _POSIX_C_SOURCE 200809L // setenv
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "diffcl/log.h" // dcl_log

const cli_command cli_tune_command = {
    .name = "tune",
    .summary = "search the fastest GEMM and work-group parameters for each OpenCL device",
    .usage = "diffcl tune [--device SPEC|all] [--quick]",
    .details =
        "Times CLBlast's GEMM kernels (Xgemm, XgemmDirect) over a coordinate search of their\n"
        "parameters on the GEMM shapes of the spiral MLP (batch 1024) and the Fashion-MNIST\n"
        "U-Net (batch 64) and a square GEMM of n = 1024, picks the size at which CLBlast switches\n"
        "between the two kernels, then times diffcl's own GEMM kernels (cl/gemm.cl, written for\n"
        "CPU-like devices) against the tuned CLBlast on the shapes of each case (NN, NT, TN) and\n"
        "keeps the faster for that case, and times diffcl's elementwise kernels at work-group\n"
        "sizes 32..256. The result goes to a tuning file in the program cache folder\n"
        "(DIFFCL_CL_CACHE_DIR, else $XDG_CACHE_HOME/diffcl, else ~/.cache/diffcl), keyed by the\n"
        "device's name, vendor, driver and platform and CLBlast's version, and every later run\n"
        "on that device applies it (DIFFCL_CL_TUNE=off does not). Last it times a training step\n"
        "of the default U-Net (batch 64) on the device and on the CPU reference and records\n"
        "which was faster: --device auto uses an OpenCL CPU device only when it was. Each\n"
        "candidate costs a CLBlast program build: on PoCL the search takes several minutes on\n"
        "2 idle cores (--quick: one or two). Results stay\n"
        "within `diffcl check`'s tolerances; the same tuning gives bitwise the same results.\n",
    .examples = "  diffcl tune\n"
                "  diffcl tune --device cl:0:0 --quick\n"
                "  DIFFCL_CL_TUNE=off diffcl bench gemm --device cl --sizes 1024   # before\n",
    .device_help = "device to tune, or 'all' for every usable OpenCL device",
    .device_def = "all",
};

// The GEMM cases of an own_gemm mask, as "NN, TN" (for 0: that CLBlast runs every GEMM).
static const char *gemm_cases(unsigned mask) {
    static const char *names[8] = {"no case (CLBlast runs every GEMM)",
                                   "NN",
                                   "NT",
                                   "NN, NT",
                                   "TN",
                                   "NN, TN",
                                   "NT, TN",
                                   "NN, NT, TN"};
    return names[mask & 7];
}

// dcl_tune_opts.step_time: a training step of the default Fashion-MNIST U-Net at batch 64, the
// work `auto` picks a device for.
static dcl_status unet_step(dcl_device *dev, void *arg, double *seconds) {
    (void)arg;
    dcl_unet_config c;
    dcl_unet_config_default(&c, 1, 28, 28);
    c.num_classes = 10;
    return cli_unet_step_time(dev, &c, 64, seconds);
}

int cli_cmd_tune(int argc, char **argv) {
    int quick = 0;
    const cli_opt opts[] = {
        // {name, short, kind, destination, metavar, help, default, min, max}
        {"quick", 0, CLI_OPT_FLAG, &quick, NULL,
         "time only the starting points: CLBlast's defaults and two sets per kernel", NULL, 0, 0},
    };
    cli_common common = {0};
    int rc = cli_parse(&cli_tune_command, opts, CLI_COUNT(opts), argc, argv, &common);
    if (rc != CLI_PARSED) return rc;
    // The search starts from CLBlast's own parameters, not from an earlier tuning.
    setenv("DIFFCL_CL_TUNE", "off", 1);

    cli_targets t;
    dcl_status s = cli_targets_init(&t, common.device ? common.device : "all", 0);
    if (s != DCL_OK) return cli_report(s);
    if (t.n == 0) {
        cli_targets_free(&t);
        dcl_log(DCL_LOG_ERROR, "no usable OpenCL device to tune (`diffcl devices` lists them)");
        return CLI_EXIT_NO_DEVICE;
    }
    dcl_status first = DCL_OK;
    dcl_tune_opts o = {.quick = quick, .step_time = unet_step};
    for (int i = 0; i < t.n && first == DCL_OK; i++) {
        dcl_device *dev = NULL;
        if ((s = dcl_device_open(&dev, t.specs[i])) == DCL_OK) {
            dcl_tune_result r;
            if ((s = dcl_device_tune(dev, &o, &r)) == DCL_OK)
                printf(
                    "%s  GEMM n=%zu: %.1f -> %.1f GFLOP/s (%.2fx); model GEMMs per step: %.1f -> "
                    "%.1f ms (cpu %.1f ms); U-Net training step %.1f ms (cpu %.1f ms%s); "
                    "DCL_WG_SIZE %zu; cl/gemm.cl for %s; %d candidates (%d refused)\n"
                    "  written to %s\n",
                    t.specs[i], r.square, r.square_gflops_before, r.square_gflops_after,
                    r.square_gflops_after / r.square_gflops_before, r.model_ms_before,
                    r.model_ms_after, r.cpu_model_ms, r.step_ms, r.cpu_step_ms,
                    r.faster_than_cpu ? ": faster, auto may pick it" : "", r.wg_size,
                    gemm_cases(r.own_gemm), r.candidates, r.rejected, r.path);
            dcl_device_free(dev);
        }
        if (s != DCL_OK) rc = cli_report(s), first = s;
    }
    cli_targets_free(&t);
    return first == DCL_OK ? CLI_EXIT_OK : rc;
}
