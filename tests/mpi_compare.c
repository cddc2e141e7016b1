// tests/cli_mpi.sh's comparison of two checkpoints: every tensor of A against the same-named
// tensor of B, |a − b| ≤ tol · max|a| of that tensor (tol 0: bitwise). Prints the worst tensor.
// Usage: mpi_compare A.safetensors B.safetensors TOL [PREFIX]  (only tensors named PREFIX*)
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "diffcl/safetensors.h" // dcl_safetensors_read, dcl_safetensors_find

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: mpi_compare A.safetensors B.safetensors TOL [PREFIX]\n");
        return 2;
    }
    double tol = atof(argv[3]);
    const char *prefix = argc > 4 ? argv[4] : "";
    dcl_st_file *a = NULL, *b = NULL;
    if (dcl_safetensors_read(&a, argv[1]) != DCL_OK ||
        dcl_safetensors_read(&b, argv[2]) != DCL_OK) {
        fprintf(stderr, "mpi_compare: cannot read %s or %s\n", argv[1], argv[2]);
        return 2;
    }
    double worst = 0, worst_abs = 0;
    const char *worst_name = "";
    int compared = 0, bad = 0;
    for (int i = 0; i < dcl_safetensors_count(a); i++) {
        const dcl_st_tensor *ta = dcl_safetensors_tensor(a, i);
        if (strncmp(ta->name, prefix, strlen(prefix)) != 0) continue;
        const dcl_st_tensor *tb = dcl_safetensors_find(b, ta->name);
        uint64_t n = dcl_st_tensor_numel(ta);
        if (!tb || dcl_st_tensor_numel(tb) != n) {
            fprintf(stderr, "mpi_compare: %s is missing or has another size in %s\n", ta->name,
                    argv[2]);
            bad = 1;
            continue;
        }
        double scale = 0, diff = 0;
        for (uint64_t j = 0; j < n; j++) {
            scale = fmax(scale, fabs(ta->data[j]));
            double d = fabs((double)ta->data[j] - tb->data[j]);
            if (!(d <= diff)) diff = d; // NaN sticks
            if (tol == 0 && memcmp(&ta->data[j], &tb->data[j], sizeof(float)) != 0) bad = 1;
        }
        double rel = scale > 0 ? diff / scale : diff;
        if (!(rel <= worst)) worst = rel, worst_abs = diff, worst_name = ta->name;
        compared++;
    }
    if (!(worst <= tol)) bad = 1;
    printf("mpi_compare: %d tensors; worst %s: max |a - b| %.3g = %.3g of its largest value "
           "(tolerance %g%s)\n",
           compared, worst_name, worst_abs, worst, tol, tol == 0 ? ": bitwise" : "");
    dcl_safetensors_free(a);
    dcl_safetensors_free(b);
    return bad || !compared;
}
