/* Test-only family for the backend tests: ragged 1D/2D/3D launches, every argument type (pointer, int, long, float),
 * fp16 and int buffers, local memory with barriers. Portable dialect (prelude.h). */

KERNEL void saxpy(GLOBAL float* y, GLOBAL const float* x, float a, int n) {
    int i = GID(0);
    if (i < n) y[i] = a * x[i] + y[i];
}

KERNEL void scale_half(GLOBAL half_t* out, GLOBAL const half_t* in, float s, long n) {
    long i = GID(0);
    if (i < n) STH(out, i, s * LDH(in, i));
}

KERNEL void iota(GLOBAL int* out, int start, int n) {
    int i = GID(0);
    if (i < n) out[i] = start + i;
}

/* out[r] = sum of x[r, 0..cols): work groups of 64 lanes (dimension 0) per row (dimension 1). */
KERNEL void row_sum(GLOBAL float* out, GLOBAL const float* x, int rows, int cols) {
    LOCAL_ARRAY(float, part, 64);
    int lane = LID(0);
    int r = GID(1);
    float acc = 0.0f;
    if (r < rows)
        for (int c = lane; c < cols; c += 64) acc += x[(long)r * cols + c];
    part[lane] = acc;
    BARRIER();
    for (int s = 32; s > 0; s >>= 1) {
        if (lane < s) part[lane] += part[lane + s];
        BARRIER();
    }
    if (lane == 0 && r < rows) out[r] = part[0];
}

/* out[(z*ny + y)*nx + x] = x + 100*y + 10000*z over a ragged 3D range. */
KERNEL void fill3d(GLOBAL int* out, int nx, int ny, int nz) {
    int x = GID(0), y = GID(1), z = GID(2);
    if (x < nx && y < ny && z < nz) out[((long)z * ny + y) * nx + x] = x + 100 * y + 10000 * z;
}

#ifdef JD_TEST_BREAK
/* Built only by the compile-failure test: the compiler log must name undefined_identifier_xyz. */
KERNEL void broken(GLOBAL float* y) {
    y[0] = undefined_identifier_xyz;
}
#endif
