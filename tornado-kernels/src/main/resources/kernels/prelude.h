/*
 * Portable kernel dialect: every kernels/<family>.cl is written once against these macros and builds as OpenCL C
 * (clBuildProgram, PoCL included) and as CUDA C++ (NVRTC), which defines JD_CUDA before this prelude.
 * Index helpers take the dimension as 0, 1 or 2. Offsets that can pass 2^31 elements use `long` (64-bit in both).
 * fp16 buffers are `half_t*` and are read/written only through LDH/STH (no half arithmetic, so no cl_khr_fp16 needed).
 */
#ifdef JD_CUDA
#define KERNEL extern "C" __global__
#define GLOBAL
#define CONSTANT
#define LOCAL_ARRAY(type, name, n) __shared__ type name[n]
#define LOCAL_PTR
#define BARRIER() __syncthreads()
#define INLINE __device__ __forceinline__
__device__ __forceinline__ int jd_gid(int d) { return d == 0 ? (int)(blockIdx.x * blockDim.x + threadIdx.x) : d == 1 ? (int)(blockIdx.y * blockDim.y + threadIdx.y) : (int)(blockIdx.z * blockDim.z + threadIdx.z); }
__device__ __forceinline__ int jd_lid(int d) { return d == 0 ? (int)threadIdx.x : d == 1 ? (int)threadIdx.y : (int)threadIdx.z; }
__device__ __forceinline__ int jd_group(int d) { return d == 0 ? (int)blockIdx.x : d == 1 ? (int)blockIdx.y : (int)blockIdx.z; }
__device__ __forceinline__ int jd_lsize(int d) { return d == 0 ? (int)blockDim.x : d == 1 ? (int)blockDim.y : (int)blockDim.z; }
__device__ __forceinline__ int jd_ngroups(int d) { return d == 0 ? (int)gridDim.x : d == 1 ? (int)gridDim.y : (int)gridDim.z; }
#define GID(d) jd_gid(d)
#define LID(d) jd_lid(d)
#define GROUP(d) jd_group(d)
#define LSIZE(d) jd_lsize(d)
#define NGROUPS(d) jd_ngroups(d)
typedef unsigned short half_t;
__device__ __forceinline__ float jd_h2f(unsigned short h) { float f; asm("{ cvt.f32.f16 %0, %1; }" : "=f"(f) : "h"(h)); return f; }
__device__ __forceinline__ unsigned short jd_f2h(float f) { unsigned short h; asm("{ cvt.rn.f16.f32 %0, %1; }" : "=h"(h) : "f"(f)); return h; }
#define LDH(p, i) jd_h2f((p)[i])
#define STH(p, i, v) ((p)[i] = jd_f2h(v))
#define EXP(x) expf(x)
#define RSQRT(x) rsqrtf(x)
#define ERF(x) erff(x)
#define FMAX(a, b) fmaxf(a, b)
#define FMIN(a, b) fminf(a, b)
#define SQRT(x) sqrtf(x)
#define SIN(x) sinf(x)
#define COS(x) cosf(x)
#define FABS(x) fabsf(x)
#define INFINITY_F __int_as_float(0x7f800000)
/* 8 consecutive elements p[i .. i+7] as floats, and back: i a multiple of 8, p 16-byte (fp16) / 32-byte (fp32) aligned. */
__device__ __forceinline__ void jd_ld8h(const half_t* p, long i, float* f) {
    uint4 v = *(const uint4*)(p + i);
    unsigned w[4] = {v.x, v.y, v.z, v.w};
    for (int k = 0; k < 4; k++) { f[2 * k] = jd_h2f((unsigned short)(w[k] & 0xffffu)); f[2 * k + 1] = jd_h2f((unsigned short)(w[k] >> 16)); }
}
__device__ __forceinline__ void jd_st8h(half_t* p, long i, const float* f) {
    unsigned w[4];
    for (int k = 0; k < 4; k++) w[k] = (unsigned)jd_f2h(f[2 * k]) | ((unsigned)jd_f2h(f[2 * k + 1]) << 16);
    *(uint4*)(p + i) = make_uint4(w[0], w[1], w[2], w[3]);
}
__device__ __forceinline__ void jd_ld8f(const float* p, long i, float* f) {
    float4 a = *(const float4*)(p + i), b = *(const float4*)(p + i + 4);
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
}
__device__ __forceinline__ void jd_st8f(float* p, long i, const float* f) {
    *(float4*)(p + i) = make_float4(f[0], f[1], f[2], f[3]);
    *(float4*)(p + i + 4) = make_float4(f[4], f[5], f[6], f[7]);
}
#else
#define KERNEL __kernel
#define GLOBAL __global
#define CONSTANT __constant
#define LOCAL_ARRAY(type, name, n) __local type name[n]
#define LOCAL_PTR __local
#define BARRIER() barrier(CLK_LOCAL_MEM_FENCE)
#define INLINE inline
#define GID(d) ((int)get_global_id(d))
#define LID(d) ((int)get_local_id(d))
#define GROUP(d) ((int)get_group_id(d))
#define LSIZE(d) ((int)get_local_size(d))
#define NGROUPS(d) ((int)get_num_groups(d))
typedef half half_t;
#define LDH(p, i) vload_half((i), (p))
#define STH(p, i, v) vstore_half((v), (i), (p))
#define EXP(x) exp(x)
#define RSQRT(x) rsqrt(x)
#define ERF(x) erf(x)
#define FMAX(a, b) fmax(a, b)
#define FMIN(a, b) fmin(a, b)
#define SQRT(x) sqrt(x)
#define SIN(x) sin(x)
#define COS(x) cos(x)
#define FABS(x) fabs(x)
#define INFINITY_F INFINITY
INLINE void jd_ld8h(GLOBAL const half_t* p, long i, float* f) {
    float8 v = vload_half8(0, p + i);
    f[0] = v.s0; f[1] = v.s1; f[2] = v.s2; f[3] = v.s3; f[4] = v.s4; f[5] = v.s5; f[6] = v.s6; f[7] = v.s7;
}
INLINE void jd_st8h(GLOBAL half_t* p, long i, const float* f) { vstore_half8_rte((float8)(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]), 0, p + i); }
INLINE void jd_ld8f(GLOBAL const float* p, long i, float* f) {
    float8 v = vload8(0, p + i);
    f[0] = v.s0; f[1] = v.s1; f[2] = v.s2; f[3] = v.s3; f[4] = v.s4; f[5] = v.s5; f[6] = v.s6; f[7] = v.s7;
}
INLINE void jd_st8f(GLOBAL float* p, long i, const float* f) { vstore8((float8)(f[0], f[1], f[2], f[3], f[4], f[5], f[6], f[7]), 0, p + i); }
#endif

/* Plane kernels (elementwise, resample, group_norm_apply): a work group per (plane, chunk of PLANE_CHUNK positions) with
 * 32-bit offsets inside the plane, so no element pays a division by the plane size; launch global (planes *
 * cover(positions, PLANE_CHUNK) / PLANE_CHUNK * LSIZE), local LSIZE (Elementwise.planes). PLANE_SETUP(positions)
 * declares this group's plane (long) and its positions [from_, to_). */
#define PLANE_CHUNK 2048
#define PLANE_SETUP(positions)                                                          \
    int chunks_ = ((positions) + PLANE_CHUNK - 1) / PLANE_CHUNK;                       \
    long plane = (long)GROUP(0) / chunks_;                                              \
    int from_ = (int)((long)GROUP(0) - plane * chunks_) * PLANE_CHUNK;                  \
    int to_ = from_ + PLANE_CHUNK < (positions) ? from_ + PLANE_CHUNK : (positions);

/* 8-element access for families whose element type follows -DJD_F16 (half_t, else float): LD8 / ST8 (p, i, float[8]). */
#ifdef JD_F16
#define LD8(p, i, f) jd_ld8h(p, i, f)
#define ST8(p, i, f) jd_st8h(p, i, f)
#else
#define LD8(p, i, f) jd_ld8f(p, i, f)
#define ST8(p, i, f) jd_st8f(p, i, f)
#endif
