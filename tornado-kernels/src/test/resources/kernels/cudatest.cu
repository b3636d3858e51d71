/* Test-only CUDA family: dynamic shared memory sized by the kernel option -DJD_SMEM=bytes (above 48 KiB the backend
 * must raise CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES). */
#ifndef JD_SMEM
#define JD_SMEM 65536
#endif

/* Each block reverses its tile of JD_SMEM/4 floats of in (ragged last tile) through shared memory. */
KERNEL void reverse_tiles(float* out, const float* in, int n) {
    extern __shared__ float tile[];
    const int per = JD_SMEM / 4;
    long base = (long)blockIdx.x * per;
    long left = (long)n - base;
    int count = left < per ? (int)left : per;
    for (int i = threadIdx.x; i < count; i += blockDim.x) tile[i] = in[base + i];
    __syncthreads();
    for (int i = threadIdx.x; i < count; i += blockDim.x) out[base + i] = tile[count - 1 - i];
}
