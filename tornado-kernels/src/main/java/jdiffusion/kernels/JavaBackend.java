package jdiffusion.kernels;

import java.util.concurrent.atomic.AtomicLong;

/**
 * The interpreted backend: buffers are Java arrays and every launch runs the kernel's Java reference
 * (multi-threaded over all cores). Always available; the definition the GPU backends are checked against.
 */
public final class JavaBackend implements Backend {
    private final AtomicLong allocated = new AtomicLong();

    /** A java-backend buffer: exactly one of f32, f16 (half bits) or i32 is non-null. */
    public final class JavaBuffer implements Buffer {
        public final String what;
        public final DType dtype;
        public final float[] f32;
        public final short[] f16;
        public final int[] i32;
        private boolean closed;

        JavaBuffer(String what, DType dtype, int length) {
            this.what = what;
            this.dtype = dtype;
            this.f32 = dtype == DType.F32 ? new float[length] : null;
            this.f16 = dtype == DType.F16 ? new short[length] : null;
            this.i32 = dtype == DType.I32 ? new int[length] : null;
        }

        public Object array() {
            return f32 != null ? f32 : f16 != null ? f16 : i32;
        }

        @Override
        public Backend backend() {
            return JavaBackend.this;
        }

        @Override
        public DType dtype() {
            return dtype;
        }

        @Override
        public long length() {
            return f32 != null ? f32.length : f16 != null ? f16.length : i32.length;
        }

        @Override
        public void close() {
            if (!closed) {
                closed = true;
                allocated.addAndGet(-bytes());
            }
        }

        @Override
        public String toString() {
            return "JavaBuffer[" + what + ", " + dtype + " x " + length() + "]";
        }
    }

    @Override
    public String name() {
        return "java";
    }

    @Override
    public String device() {
        return "JVM " + Runtime.version() + " (" + Runtime.getRuntime().availableProcessors() + " cores, "
                + Runtime.getRuntime().maxMemory() / (1 << 20) + " MiB heap)";
    }

    @Override
    public Buffer allocate(String what, DType dtype, long length) {
        if (length < 0) throw new KernelException("negative length " + length + " for " + what);
        if (length > Integer.MAX_VALUE - 8)
            throw new DeviceOutOfMemoryException(what, length * dtype.bytes, "the java backend holds at most 2^31-9 elements per buffer");
        try {
            JavaBuffer b = new JavaBuffer(what, dtype, (int) length);
            allocated.addAndGet(b.bytes());
            return b;
        } catch (OutOfMemoryError e) {
            throw new DeviceOutOfMemoryException(what, length * dtype.bytes, "Java heap exhausted (max " + Runtime.getRuntime().maxMemory() + " bytes)");
        }
    }

    private JavaBuffer own(Buffer b) {
        if (b instanceof JavaBuffer jb && jb.backend() == this) {
            if (jb.closed) throw new KernelException("use of freed buffer " + jb.what);
            return jb;
        }
        throw new KernelException("buffer " + b + " does not belong to the java backend");
    }

    @Override
    public void write(Buffer dst, long dstOffset, float[] src, int srcOffset, int length) {
        JavaBuffer d = own(dst);
        checkRange(d, dstOffset, length);
        int o = (int) dstOffset;
        switch (d.dtype) {
            case F32 -> System.arraycopy(src, srcOffset, d.f32, o, length);
            case F16 -> {
                for (int i = 0; i < length; i++) d.f16[o + i] = Float.floatToFloat16(src[srcOffset + i]);
            }
            case I32 -> throw new KernelException("write of floats into I32 buffer " + d.what);
        }
    }

    @Override
    public void write(Buffer dst, long dstOffset, int[] src, int srcOffset, int length) {
        JavaBuffer d = own(dst);
        if (d.dtype != DType.I32) throw new KernelException("write of ints into " + d.dtype + " buffer " + d.what);
        checkRange(d, dstOffset, length);
        System.arraycopy(src, srcOffset, d.i32, (int) dstOffset, length);
    }

    @Override
    public void read(Buffer src, long srcOffset, float[] dst, int dstOffset, int length) {
        JavaBuffer s = own(src);
        checkRange(s, srcOffset, length);
        int o = (int) srcOffset;
        switch (s.dtype) {
            case F32 -> System.arraycopy(s.f32, o, dst, dstOffset, length);
            case F16 -> {
                for (int i = 0; i < length; i++) dst[dstOffset + i] = Float.float16ToFloat(s.f16[o + i]);
            }
            case I32 -> {
                for (int i = 0; i < length; i++) dst[dstOffset + i] = s.i32[o + i];
            }
        }
    }

    @Override
    public void copy(Buffer src, long srcOffset, Buffer dst, long dstOffset, long length) {
        JavaBuffer s = own(src), d = own(dst);
        if (s.dtype != d.dtype) throw new KernelException("copy " + s.what + " (" + s.dtype + ") -> " + d.what + " (" + d.dtype + "): dtypes differ");
        checkRange(s, srcOffset, length);
        checkRange(d, dstOffset, length);
        System.arraycopy(s.array(), (int) srcOffset, d.array(), (int) dstOffset, (int) length);
    }

    private static void checkRange(JavaBuffer b, long offset, long length) {
        if (offset < 0 || length < 0 || offset + length > b.length())
            throw new KernelException("range [" + offset + ", " + (offset + length) + ") outside buffer " + b.what + " of " + b.length() + " elements");
    }

    @Override
    public void prepare(Kernel kernel) {
        if (kernel.reference() == null) throw new KernelException("kernel " + kernel.id() + " has no Java reference");
    }

    @Override
    public void launch(Task task) {
        Object[] args = task.args().clone();
        for (int i = 0; i < args.length; i++) if (args[i] instanceof Buffer b) args[i] = own(b).array();
        try {
            task.kernel().reference().run(args);
        } catch (RuntimeException e) {
            throw new KernelException("task " + task.name() + " (" + task.kernel().id() + ") failed on the java backend: " + e, e);
        }
    }

    @Override
    public void finish() {
    }

    @Override
    public long allocatedBytes() {
        return allocated.get();
    }

    @Override
    public void close() {
    }
}
