package jdiffusion.kernels;

/**
 * NDRange of a kernel launch in OpenCL terms: {@code global[i]} work items in dimension i (a multiple of
 * {@code local[i]}), grouped in work groups of {@code local[i]}. CUDA maps it to grid = global / local, block = local.
 * Kernels guard their own ragged edges; {@link #cover} rounds a problem size up to a multiple of the group size.
 */
public record Launch(long[] global, long[] local) {
    public Launch {
        if (global.length != local.length || global.length < 1 || global.length > 3)
            throw new IllegalArgumentException("launch needs 1 to 3 dimensions, global and local of equal rank");
        for (int i = 0; i < global.length; i++)
            if (local[i] <= 0 || global[i] <= 0 || global[i] % local[i] != 0)
                throw new IllegalArgumentException("global " + global[i] + " is not a positive multiple of local " + local[i] + " in dimension " + i);
    }

    public static long cover(long n, long group) {
        return (n + group - 1) / group * group;
    }

    /** One dimension: at least n work items in groups of {@code group}. */
    public static Launch of1(long n, int group) {
        return new Launch(new long[]{cover(n, group)}, new long[]{group});
    }

    /** Two dimensions: at least nx by ny work items in groups of gx by gy. */
    public static Launch of2(long nx, long ny, int gx, int gy) {
        return new Launch(new long[]{cover(nx, gx), cover(ny, gy)}, new long[]{gx, gy});
    }

    /** Three dimensions: at least nx by ny by nz work items in groups of gx by gy by gz. */
    public static Launch of3(long nx, long ny, long nz, int gx, int gy, int gz) {
        return new Launch(new long[]{cover(nx, gx), cover(ny, gy), cover(nz, gz)}, new long[]{gx, gy, gz});
    }
}
