/* Test-only family that does not compile: the build failure must carry this log. */
KERNEL void oops(GLOBAL float* y, int n) {
    int i = GID(0);
    y[i] = undefined_symbol_jd42 + 1.0f;
}
