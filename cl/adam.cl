// The optimizer: one AdamW step over a whole parameter arena, gradient clipping folded in.

// torch.optim.AdamW's order (include/diffcl/ops.h): params *= decay; m, v updated with the
// clipped gradient; params −= step_size · m / (√v / bc2_sqrt + eps). gsq (1) = Σ grads², so the
// clip scale comes from the device without a read-back. params, m, v, grads (n)
kernel void adamw_step(global float *params, uint p_off, global float *m, uint m_off,
                       global float *v, uint v_off, global const float *grads, uint g_off,
                       global const float *gsq, uint gsq_off, float decay, float beta1, float beta2,
                       float eps, float step_size, float bc2_sqrt, float clip, uint n) {
    float norm = sqrt(gsq[gsq_off]);
    float scale = clip > 0.0f && norm > clip ? clip / norm : 1.0f;
    FOR_EACH(i, n) {
        float g = scale * grads[g_off + i];
        float mi = beta1 * m[m_off + i] + (1.0f - beta1) * g;
        float vi = beta2 * v[v_off + i] + (1.0f - beta2) * (g * g);
        float denom = sqrt(vi) / bc2_sqrt + eps;
        m[m_off + i] = mi;
        v[v_off + i] = vi;
        params[p_off + i] = params[p_off + i] * decay - step_size * (mi / denom);
    }
}
