# PyTorch on the same GPU as the peer reference for the kernel benchmarks: matmul TFLOP/s at SD1.5 GEMM shapes and
# scaled_dot_product_attention (flash/mem-efficient/math) at SD1.5 attention shapes. Prints CSV lines.
import time, torch
import torch.nn.functional as F

def timeit(fn, iters=20):
    for _ in range(3): fn()
    torch.cuda.synchronize()
    s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(iters):
        s.record(); fn(); e.record(); torch.cuda.synchronize(); times.append(s.elapsed_time(e))
    times.sort()
    return times[len(times) // 2]

print("torch", torch.__version__, torch.cuda.get_device_name())
print("kind,dtype,m,n,k,ms,tflops")
for dtype, tf32 in ((torch.float16, False), (torch.float32, False), (torch.float32, True)):
    torch.backends.cuda.matmul.allow_tf32 = tf32
    for m, n, k in ((8192, 320, 320), (8192, 1280, 320), (2048, 640, 640), (512, 1280, 1280), (8192, 320, 2880), (4096, 4096, 4096)):
        a = torch.randn(m, k, device="cuda", dtype=dtype); b = torch.randn(n, k, device="cuda", dtype=dtype)
        ms = timeit(lambda: a @ b.t())
        print(f"matmul,{str(dtype).split('.')[-1]}{'-tf32' if tf32 else ''},{m},{n},{k},{ms:.4f},{2*m*n*k/ms/1e9:.2f}")
torch.backends.cuda.matmul.allow_tf32 = False
print("kind,dtype,backend,batch,heads,seq_q,seq_k,head_dim,ms,tflops")
for dtype in (torch.float16, torch.float32):
    for seq, hd in ((4096, 40), (1024, 80), (256, 160), (64, 160)):
        for batch in (2, 8, 16, 32):
            for sk in (seq, 77):
                q = torch.randn(batch, 8, seq, hd, device="cuda", dtype=dtype)
                k = torch.randn(batch, 8, sk, hd, device="cuda", dtype=dtype)
                v = torch.randn(batch, 8, sk, hd, device="cuda", dtype=dtype)
                for name, be in (("flash", torch.nn.attention.SDPBackend.FLASH_ATTENTION), ("efficient", torch.nn.attention.SDPBackend.EFFICIENT_ATTENTION), ("math", torch.nn.attention.SDPBackend.MATH)):
                    try:
                        with torch.nn.attention.sdpa_kernel(be):
                            ms = timeit(lambda: F.scaled_dot_product_attention(q, k, v), iters=10)
                        print(f"sdpa,{str(dtype).split('.')[-1]},{name},{batch},8,{seq},{sk},{hd},{ms:.4f},{4*batch*8*seq*sk*hd/ms/1e9:.2f}")
                    except Exception as ex:
                        print(f"sdpa,{str(dtype).split('.')[-1]},{name},{batch},8,{seq},{sk},{hd},,{type(ex).__name__}")
                    torch.cuda.empty_cache()
