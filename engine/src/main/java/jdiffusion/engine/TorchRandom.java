package jdiffusion.engine;

import java.util.random.RandomGenerator;

/**
 * The stream of torch.Generator("cpu").manual_seed(seed): MT19937 seeded like torch, and {@link #randn} filling a
 * float tensor the way torch's CPU normal_ does (24-bit uniforms, Box-Muller over blocks of 16; the double-precision
 * cached path below 16 elements). So a seed gives diffusers' initial latents on the CPU up to float rounding of
 * log/sin/cos. {@link #nextGaussian} is torch's scalar (double) normal.
 */
public final class TorchRandom implements RandomGenerator {
    private static final int N = 624, M = 397;
    private final int[] mt = new int[N];
    private int left = 1, next;
    private double cachedNormal = Double.NaN;

    public TorchRandom(long seed) {
        mt[0] = (int) seed;
        for (int j = 1; j < N; j++) mt[j] = 1812433253 * (mt[j - 1] ^ (mt[j - 1] >>> 30)) + j;
    }

    /** One 32-bit MT19937 output (as an unsigned value in the low bits of the int). */
    public int nextInt() {
        if (--left == 0) nextState();
        int y = mt[next++];
        y ^= y >>> 11;
        y ^= (y << 7) & 0x9d2c5680;
        y ^= (y << 15) & 0xefc60000;
        return y ^ (y >>> 18);
    }

    private void nextState() {
        left = N;
        next = 0;
        for (int k = 0; k < N; k++) {
            int y = (mt[k] & 0x80000000) | (mt[(k + 1) % N] & 0x7fffffff);
            mt[k] = mt[(k + M) % N] ^ (y >>> 1) ^ ((y & 1) != 0 ? 0x9908b0df : 0);
        }
    }

    /** torch's random64(): the first 32-bit draw is the high word. */
    @Override
    public long nextLong() {
        long hi = nextInt() & 0xffffffffL, lo = nextInt() & 0xffffffffL;
        return (hi << 32) | lo;
    }

    /** uniform_real_distribution&lt;float&gt;(0, 1): 24 random bits. */
    public float nextUniformFloat() {
        return (nextInt() & 0xffffff) * 0x1p-24f;
    }

    /** uniform_real_distribution&lt;double&gt;(0, 1): 53 random bits of random64(). */
    @Override
    public double nextDouble() {
        return (nextLong() & ((1L << 53) - 1)) * 0x1p-53;
    }

    /** at::normal_distribution&lt;double&gt;: Box-Muller on two doubles, the sine half cached for the next call. */
    @Override
    public double nextGaussian() {
        if (!Double.isNaN(cachedNormal)) {
            double r = cachedNormal;
            cachedNormal = Double.NaN;
            return r;
        }
        double u1 = nextDouble(), u2 = nextDouble();
        double r = Math.sqrt(-2.0 * Math.log1p(-u2));
        double theta = 2.0 * Math.PI * u1;
        cachedNormal = r * Math.sin(theta);
        return r * Math.cos(theta);
    }

    /** torch.randn(out.length) into out (a contiguous float tensor). */
    public void randn(float[] out) {
        int n = out.length;
        if (n < 16) {
            for (int i = 0; i < n; i++) out[i] = (float) nextGaussian();
            return;
        }
        for (int i = 0; i < n; i++) out[i] = nextUniformFloat();
        for (int i = 0; i + 16 <= n; i += 16) boxMuller16(out, i);
        if (n % 16 != 0) {                                                   // torch redraws the last 16
            for (int i = n - 16; i < n; i++) out[i] = nextUniformFloat();
            boxMuller16(out, n - 16);
        }
    }

    private static void boxMuller16(float[] d, int o) {
        for (int j = 0; j < 8; j++) {
            float u1 = 1f - d[o + j];
            float u2 = d[o + j + 8];
            float radius = (float) Math.sqrt(-2f * (float) Math.log(u1));
            float theta = (float) (2.0f * Math.PI * u2);
            d[o + j] = radius * (float) Math.cos(theta);
            d[o + j + 8] = radius * (float) Math.sin(theta);
        }
    }
}
