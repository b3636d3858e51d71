package jdiffusion.kernels;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.BiFunction;

import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** Liveness planning of TaskGraph temps: physical counts and bytes, no sharing between overlapping ranges or dtypes, same results as unplanned. */
class TaskGraphPlanTest {
    static List<Backend> backends;

    @BeforeAll
    static void open() {
        backends = Backends.forTests();
    }

    @AfterAll
    static void closeAll() {
        for (Backend b : backends) b.close();
    }

    static float[] random(int seed, int n) {
        SplittableRandom r = new SplittableRandom(seed);
        float[] v = new float[n];
        for (int i = 0; i < v.length; i++) v[i] = (float) r.nextDouble(-3, 3);
        return v;
    }

    /** x -> a = silu(x) -> b = 2a -> c = silu(b) -> d = 0.5c -> out = d + x: ranges a [0,1], b [1,2], c [2,3], d [3,4]. */
    static Buffer chain(TaskGraph g, Buffer x, int n) {
        Buffer a = g.temp("a", DType.F32, n), b = g.temp("b", DType.F32, n), c = g.temp("c", DType.F32, n), d = g.temp("d", DType.F32, n);
        Buffer out = g.temp("out", DType.F32, n);
        Elementwise.silu(g, x, a, n);
        Elementwise.scale(g, a, b, n, 2f);
        Elementwise.silu(g, b, c, n);
        Elementwise.scale(g, c, d, n, 0.5f);
        Elementwise.add(g, d, x, out, n);
        return g.keep(out);
    }

    @Test
    void chainOfElementwiseOpsUsesTwoBuffersAndMatchesUnplanned() {
        int n = 1000;
        float[] x = random(1, n);
        for (Backend be : backends) {
            float[] want;
            try (TaskGraph g = new TaskGraph("unplanned", be, false, false)) {
                Buffer in = g.scratch("x", DType.F32, n);
                Buffer out = chain(g, in, n);
                be.write(in, x);
                g.execute();
                want = be.read(out);
                assertEquals(5L * n * 4, g.naiveBytes());
                assertEquals(g.naiveBytes(), g.plannedBytes());
            }
            long before = be.allocatedBytes();
            try (TaskGraph g = new TaskGraph("planned", be, false, true)) {
                Buffer in = g.scratch("x", DType.F32, n);
                Buffer out = chain(g, in, n);
                List<Task> recorded = g.tasks();
                g.warmup();
                Map<Buffer, Buffer> phys = check(recorded, g.tasks());
                assertEquals(2, phys.values().stream().filter(b -> b != out).map(System::identityHashCode).distinct().count(), be.name() + ": a, c share; b, d share");
                assertEquals(5L * n * 4, g.naiveBytes());
                assertEquals(3L * n * 4, g.plannedBytes(), "two pooled buffers and the kept output");
                assertEquals(before + 4L * n * 4, be.allocatedBytes(), "x, out and the two pooled buffers");
                for (int rep = 0; rep < 2; rep++) {
                    be.write(in, x);
                    g.execute();
                    assertArrayEquals(want, be.read(out), be.name() + " planned vs unplanned, replay " + rep);
                }
            }
            assertEquals(before, be.allocatedBytes(), be.name() + ": close frees the plan");
        }
    }

    /**
     * TaskGraph.derived: its tasks run once, at warmup, not on replays and not in tasks(); the same key gives the same
     * buffer; a temp cannot feed it; close frees it. Here: silu of a constant x, then out = derived + x each execution.
     */
    @Test
    void derivedBuffersAreComputedOnceAtWarmup() {
        int n = 777;
        float[] x = random(5, n);
        for (Backend be : backends) {
            long before = be.allocatedBytes();
            try (TaskGraph g = new TaskGraph("derived", be)) {
                Buffer in = g.scratch("x", DType.F32, n), out = g.scratch("out", DType.F32, n);
                be.write(in, x);
                Buffer d = g.derived(List.of("silu", in), "silu(x)", DType.F32, n, b -> Elementwise.silu(g, in, b, n));
                assertSame(d, g.derived(List.of("silu", in), "again", DType.F32, n, b -> { throw new AssertionError("recorded twice"); }));
                Elementwise.add(g, d, in, out, n);
                assertEquals(1, g.tasks().size(), "the derived task is not replayed");
                Buffer t = g.temp("t", DType.F32, n);
                assertThrows(KernelException.class, () -> g.derived("bad", "bad", DType.F32, n, b -> Elementwise.silu(g, t, b, n)));
                g.warmup();
                float[] want = new float[n];
                for (int i = 0; i < n; i++) want[i] = (float) (x[i] / (1 + Math.exp(-x[i])) + x[i]);
                for (int rep = 0; rep < 2; rep++) {
                    g.execute();
                    float[] got = be.read(out);
                    for (int i = 0; i < n; i++) assertEquals(want[i], got[i], 1e-5f * (1 + Math.abs(want[i])), be.name() + " element " + i + ", execution " + rep);
                }
                be.write(in, new float[n]);                      // x changes after warmup: the derived buffer does not
                g.execute();
                float[] got = be.read(out), silu = be.read(d);
                for (int i = 0; i < n; i++) assertEquals(silu[i], got[i], 0f, be.name() + ": out = silu(old x) + 0");
            }
            assertEquals(before, be.allocatedBytes(), be.name() + ": close frees the derived buffer");
        }
    }

    @Test
    void bestFitReusesTheSmallestFreeBufferAndNeverAcrossDtypes() {
        Backend java = backends.get(0);
        try (TaskGraph g = new TaskGraph("fit", java, false, true)) {
            Buffer x = g.scratch("x", DType.F32, 4096);
            Buffer big = g.temp("big", DType.F32, 4096), small = g.temp("small", DType.F32, 1024);
            Elementwise.silu(g, x, big, 4096);                       // big [0, 1]
            Elementwise.silu(g, x, small, 1024);                     // small [1, 2]
            Elementwise.add(g, big, x, big, 4096);                   // in place
            Buffer h = g.temp("h", DType.F16, 1024), h2 = g.temp("h2", DType.F16, 512);
            Elementwise.cast(g, small, h, 1024);                     // h [3, 4]: F16, nothing of F32 may take it
            Buffer f = g.temp("f", DType.F32, 512);
            Elementwise.cast(g, h, f, 512);                          // f [4, 5]: big and small are free, small fits best
            Elementwise.cast(g, f, h2, 512);                         // h2 [5, 5]: h is free again
            Buffer out = g.keep(g.temp("out", DType.F16, 512));
            Elementwise.silu(g, h2, out, 512);
            List<Task> recorded = g.tasks();
            g.warmup();
            Map<Buffer, Buffer> phys = check(recorded, g.tasks());
            assertNotSame(phys.get(big), phys.get(small));
            assertSame(phys.get(small), phys.get(f), "f takes the smallest free F32 buffer");
            assertSame(phys.get(h), phys.get(h2));
            assertEquals(4096 * 4 + 1024 * 4 + 1024 * 2 + 512 * 2, g.plannedBytes());
            g.execute();
        }
    }

    @Test
    void randomGraphsNeverShareOverlappingTempsAndMatchUnplanned() {
        for (int seed = 0; seed < 6; seed++) {
            Backend be = backends.get(seed % backends.size());
            float[] want = null;
            for (boolean arena : new boolean[]{false, true}) {
                try (TaskGraph g = new TaskGraph("random" + seed, be, false, arena)) {
                    Buffer out = randomGraph(g, seed);
                    List<Task> recorded = g.tasks();
                    g.warmup();
                    if (arena) {
                        check(recorded, g.tasks());
                        assertTrue(g.plannedBytes() < g.naiveBytes(), g.plannedBytes() + " < " + g.naiveBytes());
                    }
                    g.execute();
                    float[] got = be.read(out);
                    if (want == null) want = got;
                    else assertArrayEquals(want, got, be.name() + " seed " + seed);
                }
            }
        }
    }

    /** 40 random ops over a pool of live values (F32 and F16, lengths 64 to 2048) that come and go; returns the kept result. */
    static Buffer randomGraph(TaskGraph g, int seed) {
        SplittableRandom r = new SplittableRandom(seed);
        Buffer x = g.scratch("x", DType.F32, 2048);
        g.backend.write(x, random(seed, 2048));
        List<Buffer> live = new ArrayList<>(List.of(x));
        BiFunction<DType, Long, Buffer> temp = (dt, n) -> g.temp("t" + g.tasks().size(), dt, n);
        for (int i = 0; i < 40; i++) {
            Buffer a = live.get(r.nextInt(live.size()));
            long n = Math.min(a.length(), 64L << r.nextInt(6));
            Buffer out;
            switch (r.nextInt(4)) {
                case 0 -> Elementwise.silu(g, a, out = temp.apply(a.dtype(), n), n);
                case 1 -> Elementwise.scale(g, a, out = temp.apply(a.dtype(), n), n, 0.75f);
                case 2 -> {
                    Buffer b = live.stream().filter(c -> c.dtype() == a.dtype()).skip(r.nextInt(2)).findFirst().orElse(a);
                    long m = Math.min(n, b.length());
                    Elementwise.add(g, a, b, out = temp.apply(a.dtype(), m), m);
                }
                default -> {
                    DType other = a.dtype() == DType.F32 ? DType.F16 : DType.F32;
                    Elementwise.cast(g, a, out = temp.apply(other, n), n);
                }
            }
            live.add(out);
            if (live.size() > 4) live.remove(1 + r.nextInt(live.size() - 1)); // x stays; the rest die at random
        }
        Buffer last = live.getLast();
        Buffer out = g.temp("out", DType.F32, last.length());
        if (last.dtype() == DType.F32) Elementwise.scale(g, last, out, last.length(), 1f);
        else Elementwise.cast(g, last, out, last.length());
        return g.keep(out);
    }

    @Test
    void groupNormAndAttentionWorkspacesPlannedMatchUnplanned() {
        int n = 2, c = 32, hw = 64, heads = 2, seq = 48, d = 16;
        for (Backend be : backends)
            for (DType dt : new DType[]{DType.F32, DType.F16}) {
                float[] want = null;
                for (boolean arena : new boolean[]{false, true}) {
                    try (TaskGraph g = new TaskGraph("norm+attention", be, false, arena)) {
                        Buffer x = g.scratch("x", dt, (long) n * c * hw), gamma = g.scratch("gamma", dt, c), beta = g.scratch("beta", dt, c);
                        be.write(x, random(3, n * c * hw));
                        be.write(gamma, random(4, c));
                        be.write(beta, random(5, c));
                        Buffer y = g.temp("y", dt, (long) n * c * hw), z = g.temp("z", dt, (long) n * c * hw);
                        Norm.groupNorm(g, x, gamma, beta, y, n, c, hw, 8, 1e-5f, true);
                        Norm.groupNorm(g, y, gamma, beta, z, n, c, hw, 4, 1e-5f, false);
                        Buffer a1 = g.temp("a1", dt, (long) n * seq * heads * d), a2 = g.temp("a2", dt, (long) n * seq * heads * d);
                        // z as [n, seq=48, heads*d=32]... uses the first n*seq*32 of z's 4096 elements
                        Attention.attention(g, Attention.Processor.VANILLA, z, z, z, a1, n, heads, seq, seq, d, 0.25f, false);
                        Attention.attention(g, Attention.Processor.CHUNKED, a1, z, a1, a2, n, heads, seq, seq, d, 0.25f, true);
                        Buffer out = g.keep(g.temp("out", dt, (long) n * seq * heads * d));
                        Elementwise.add(g, a2, a1, out, (long) n * seq * heads * d);
                        List<Task> recorded = g.tasks();
                        g.execute();
                        if (arena) check(recorded, g.tasks());
                        float[] got = be.read(out);
                        if (want == null) want = got;
                        else same(be, want, got, be.name() + " " + dt + " planned vs unplanned");
                    }
                }
            }
    }

    /**
     * Bit-identical, except on the java backend, whose Vector API float reductions (reduceLanes ADD in the attention
     * references) may change order when C2 compiles them: there two runs of one graph can differ in the last bit.
     */
    static void same(Backend be, float[] want, float[] got, String what) {
        if (be instanceof JavaBackend) ParityCheck.close(what, got, want, 1e-6);
        else assertArrayEquals(want, got, what);
    }

    @Test
    void tempsStayInsideTheirGraph() {
        Backend java = backends.get(0);
        try (TaskGraph g = new TaskGraph("one", java, false, true); TaskGraph h = new TaskGraph("two", java, false, true)) {
            Buffer t = g.temp("t", DType.F32, 16);
            Buffer x = h.scratch("x", DType.F32, 16);
            KernelException other = assertThrows(KernelException.class, () -> Elementwise.silu(h, x, t, 16));
            assertTrue(other.getMessage().contains("temp of another graph"), other.getMessage());
            assertThrows(KernelException.class, () -> h.keep(t));
            KernelException host = assertThrows(KernelException.class, () -> java.read(t));
            assertTrue(host.getMessage().contains("Temp[one/t"), host.getMessage());
            assertSame(x, h.keep(x), "keep of a real buffer is the buffer");
        }
    }

    /**
     * The temp -> physical map of a plan, checked: same dtype, long enough, one physical per temp, kept temps alone,
     * and temps whose live ranges overlap (the same task included) on different physical buffers.
     */
    static Map<Buffer, Buffer> check(List<Task> recorded, List<Task> planned) {
        assertEquals(recorded.size(), planned.size());
        Map<Buffer, Buffer> phys = new IdentityHashMap<>();
        Map<Buffer, int[]> range = new IdentityHashMap<>();
        for (int i = 0; i < recorded.size(); i++) {
            Object[] ra = recorded.get(i).args(), pa = planned.get(i).args();
            for (int j = 0; j < ra.length; j++) {
                if (!(ra[j] instanceof BufferPlan.Temp t)) {
                    assertSame(ra[j], pa[j]);
                    continue;
                }
                Buffer p = (Buffer) pa[j];
                assertTrue(!(p instanceof BufferPlan.Temp), "planned task " + i + " still has temp " + t);
                assertEquals(t.dtype(), p.dtype(), t + " on " + p);
                assertTrue(p.length() >= t.length(), t + " on " + p);
                Buffer prev = phys.put(t, p);
                if (prev != null) assertSame(prev, p, t + " moved");
                range.computeIfAbsent(t, k -> new int[]{recorded.size(), -1});
                int[] r = range.get(t);
                r[0] = Math.min(r[0], i);
                r[1] = Math.max(r[1], i);
            }
        }
        List<Buffer> temps = new ArrayList<>(phys.keySet());
        for (Buffer a : temps)
            for (Buffer b : temps) {
                if (a == b) continue;
                int[] ra = range.get(a), rb = range.get(b);
                boolean overlap = ra[0] <= rb[1] && rb[0] <= ra[1];
                boolean kept = ((BufferPlan.Temp) a).kept != null || ((BufferPlan.Temp) b).kept != null;
                if (overlap || kept) assertNotSame(phys.get(a), phys.get(b), a + " " + java.util.Arrays.toString(ra) + " and " + b + " " + java.util.Arrays.toString(rb));
            }
        return phys;
    }
}
