package jdiffusion.kernels;

/**
 * GEMM family: fp32, TF32 (graph.tf32) and fp16-in/fp32-accumulate; tensor cores (WMMA/mma) on CUDA.
 * Every method appends tasks to the graph; buffers are F32 or F16 (all of one dtype unless stated).
 */
public final class Gemm {
    private Gemm() {
    }

    /** out[m,n] = x[m,k] . weight[n,k]^T + bias[n] (PyTorch Linear layout; bias may be null). */
    public static void linear(TaskGraph g, Buffer x, Buffer weight, Buffer bias, Buffer out, int m, int n, int k) {
        throw new UnsupportedOperationException("Gemm.linear is not written yet");
    }

    /** c[i] (m x n) = alpha * a[i] (m x k) . (transB ? b[i] (n x k)^T : b[i] (k x n)) for i in [0, batch), contiguous batches. */
    public static void matmul(TaskGraph g, Buffer a, Buffer b, Buffer c, int batch, int m, int n, int k, boolean transB, float alpha) {
        throw new UnsupportedOperationException("Gemm.matmul is not written yet");
    }
}
