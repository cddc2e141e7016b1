// SGEMM for CPU-like OpenCL devices (PoCL): C (M, N) = alpha·op(A)·op(B) + beta·C, row-major, each
// work-item one register block of C with explicit vectors, so the compiler emits SIMD code without
// relying on vectorisation across work-items. `diffcl tune` chooses it per device over CLBlast's
// kernels (host/device/opencl/cl_ops.c, cl/README.md). Sizes are below 2^31 (the host checks).

// Rows of C per work-item in gemm_rows (16 columns each) and gemm_dots (GEMM_DN columns each).
#ifndef GEMM_RM
#define GEMM_RM 8
#endif
#ifndef GEMM_DM
#define GEMM_DM 4
#endif
#ifndef GEMM_DN
#define GEMM_DN 4
#endif

// C's element: alpha·acc, plus beta·C unless beta is 0 (then C is not read, as BLAS does).
inline float gemm_out(float acc, float alpha, float beta, float c) {
    float v = alpha * acc;
    return beta != 0.0f ? v + beta * c : v;
}

// op(B) = B (K, N): one work-item per block of GEMM_RM rows × 16 columns, B's rows loaded as
// float16 and each op(A) element broadcast into a fused multiply-add. op(A) = A (M, K), or Aᵀ with
// A (K, M) when ta. Each element of C is Σ_k in order k = 0, 1, ..., K − 1 (one fma per k), so the
// result does not depend on the launch shape. Rows past M repeat row M − 1 and are not stored;
// a block past N's end loads and stores element by element.
kernel void gemm_rows(global float *c, uint c_off, global const float *a, uint a_off,
                      global const float *b, uint b_off, uint M, uint N, uint K, uint ta,
                      float alpha, float beta) {
    uint nbj = (N + 15) / 16, nbi = (M + GEMM_RM - 1) / GEMM_RM;
    uint ak = ta ? M : 1; // stride of op(A) along k
    FOR_EACH(blk, (size_t)nbi * nbj) {
        uint bj = (uint)blk / nbi, bi = (uint)blk - bj * nbi, i0 = bi * GEMM_RM, j0 = bj * 16;
        global const float *ar[GEMM_RM];
#pragma unroll
        for (uint r = 0; r < GEMM_RM; r++) {
            uint i = min(i0 + r, M - 1);
            ar[r] = a + a_off + (ta ? i : i * K);
        }
        global const float *bp = b + b_off + j0;
        float16 acc[GEMM_RM];
#pragma unroll
        for (uint r = 0; r < GEMM_RM; r++) acc[r] = (float16)(0.0f);
        if (j0 + 16 <= N) {
            for (uint k = 0; k < K; k++) {
                float16 bv = vload16(0, bp + (size_t)k * N);
#pragma unroll
                for (uint r = 0; r < GEMM_RM; r++)
                    acc[r] = fma((float16)(ar[r][k * ak]), bv, acc[r]);
            }
        } else {
            uint w = N - j0;
            for (uint k = 0; k < K; k++) {
                float bs[16];
#pragma unroll
                for (uint j = 0; j < 16; j++) bs[j] = j < w ? bp[(size_t)k * N + j] : 0.0f;
                float16 bv = vload16(0, bs);
#pragma unroll
                for (uint r = 0; r < GEMM_RM; r++)
                    acc[r] = fma((float16)(ar[r][k * ak]), bv, acc[r]);
            }
        }
#pragma unroll
        for (uint r = 0; r < GEMM_RM; r++) {
            if (i0 + r >= M) break;
            global float *cp = c + c_off + (size_t)(i0 + r) * N + j0;
            float out[16];
            vstore16(acc[r], 0, out);
#pragma unroll
            for (uint j = 0; j < 16; j++)
                if (j0 + j < N) cp[j] = gemm_out(out[j], alpha, beta, beta != 0.0f ? cp[j] : 0.0f);
        }
    }
}

// op(A) = A (M, K), op(B) = Bᵀ with B (N, K): C[i, j] is the dot product of two rows, each
// work-item a block of GEMM_DM × GEMM_DN of them with float8 partial sums along k (lane l adds
// k ≡ l mod 8 in order), folded by sum8, then the K mod 8 tail added in order. Rows and columns
// past the ends repeat the last one and are not stored. Blocks are numbered row block first, so
// neighbouring work-items share op(B)'s rows in cache (as in gemm_rows).
kernel void gemm_dots(global float *c, uint c_off, global const float *a, uint a_off,
                      global const float *b, uint b_off, uint M, uint N, uint K, float alpha,
                      float beta) {
    uint nbj = (N + GEMM_DN - 1) / GEMM_DN, nbi = (M + GEMM_DM - 1) / GEMM_DM, K8 = K & ~7u;
    FOR_EACH(blk, (size_t)nbi * nbj) {
        uint bj = (uint)blk / nbi, bi = (uint)blk - bj * nbi;
        uint i0 = bi * GEMM_DM, j0 = bj * GEMM_DN;
        global const float *ar[GEMM_DM], *br[GEMM_DN];
#pragma unroll
        for (uint r = 0; r < GEMM_DM; r++) ar[r] = a + a_off + (size_t)min(i0 + r, M - 1) * K;
#pragma unroll
        for (uint q = 0; q < GEMM_DN; q++) br[q] = b + b_off + (size_t)min(j0 + q, N - 1) * K;
        float8 acc[GEMM_DM][GEMM_DN];
#pragma unroll
        for (uint r = 0; r < GEMM_DM; r++)
#pragma unroll
            for (uint q = 0; q < GEMM_DN; q++) acc[r][q] = (float8)(0.0f);
        for (uint k = 0; k < K8; k += 8) {
            float8 av[GEMM_DM], bv[GEMM_DN];
#pragma unroll
            for (uint r = 0; r < GEMM_DM; r++) av[r] = vload8(0, ar[r] + k);
#pragma unroll
            for (uint q = 0; q < GEMM_DN; q++) bv[q] = vload8(0, br[q] + k);
#pragma unroll
            for (uint r = 0; r < GEMM_DM; r++)
#pragma unroll
                for (uint q = 0; q < GEMM_DN; q++) acc[r][q] = fma(av[r], bv[q], acc[r][q]);
        }
#pragma unroll
        for (uint r = 0; r < GEMM_DM; r++) {
            if (i0 + r >= M) break;
#pragma unroll
            for (uint q = 0; q < GEMM_DN; q++) {
                if (j0 + q >= N) break;
                float s = sum8(acc[r][q]);
                for (uint k = K8; k < K; k++) s = fma(ar[r][k], br[q][k], s);
                global float *cp = c + c_off + (size_t)(i0 + r) * N + j0 + q;
                *cp = gemm_out(s, alpha, beta, beta != 0.0f ? *cp : 0.0f);
            }
        }
    }
}
