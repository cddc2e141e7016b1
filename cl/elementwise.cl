// Fill, copy and fused linear combinations. Every tensor is (buffer, element offset).

kernel void fill(global float *out, uint out_off, float value, uint n) {
    FOR_EACH(i, n) out[out_off + i] = value;
}

kernel void copy(global float *out, uint out_off, global const float *in, uint in_off, uint n) {
    FOR_EACH(i, n) out[out_off + i] = in[in_off + i];
}

// out = a x + b y; out may alias x or y element for element.
kernel void axpby(global float *out, uint out_off, global const float *x, uint x_off,
                  global const float *y, uint y_off, float a, float b, uint n) {
    FOR_EACH(i, n) out[out_off + i] = a * x[x_off + i] + b * y[y_off + i];
}

// out = a x + b y + c z: one sampler step from host-computed coefficients.
kernel void lincomb3(global float *out, uint out_off, global const float *x, uint x_off,
                     global const float *y, uint y_off, global const float *z, uint z_off, float a,
                     float b, float c, uint n) {
    FOR_EACH(i, n) out[out_off + i] = a * x[x_off + i] + b * y[y_off + i] + c * z[z_off + i];
}
