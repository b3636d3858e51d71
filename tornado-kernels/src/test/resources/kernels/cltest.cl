/* Test-only family for the OpenCL backend tests, written in the portable dialect (prelude.h). */

/* y[i] = a * x[i] + b for i < n (F32). */
KERNEL void axpb(GLOBAL const float* x, GLOBAL float* y, int n, float a, float b) {
    int i = GID(0);
    if (i < n) y[i] = a * x[i] + b;
}

/* y[i] = a * x[i] + b for i < n, fp16 storage, fp32 math. */
KERNEL void axpb_f16(GLOBAL const half_t* x, GLOBAL half_t* y, int n, float a, float b) {
    int i = GID(0);
    if (i < n) STH(y, i, a * LDH(x, i) + b);
}

/* out[r] = sum of x[r, 0..cols) over one work group of 64 per row (local-memory tree reduction); 2D grid [64, rows]. */
KERNEL void rowsum(GLOBAL const float* x, GLOBAL float* out, int rows, int cols) {
    LOCAL_ARRAY(float, part, 64);
    int t = LID(0);
    int r = GROUP(1);
    float s = 0.0f;
    if (r < rows)
        for (int c = t; c < cols; c += 64) s += x[(long)r * cols + c];
    part[t] = s;
    BARRIER();
    for (int w = 32; w > 0; w >>= 1) {
        if (t < w) part[t] += part[t + w];
        BARRIER();
    }
    if (t == 0 && r < rows) out[r] = part[0];
}

/* out[i] = ids[i] * scale + offset, with a 64-bit offset argument (I32 in, F32 out). */
KERNEL void scaleids(GLOBAL const int* ids, GLOBAL float* out, long n, int scale, long offset) {
    long i = GID(0);
    if (i < n) out[i] = (float)((long)ids[i] * scale + offset);
}
