package jdiffusion.kernels;

import org.junit.jupiter.api.Test;

import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertInstanceOf;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

class BackendsTest {
    static boolean openClHere() {
        try {
            return !OpenClBackend.all().isEmpty();
        } catch (KernelException e) {
            return false;
        }
    }

    static void closeAll(List<Backend> bs) {
        for (Backend b : bs) b.close();
    }

    @Test
    void javaFirstThenEveryOpenClDevice() {
        List<Backend> all = Backends.forTests(null, null);
        try {
            assertEquals("java", all.getFirst().name());
            long cl = all.stream().filter(b -> b.name().equals("opencl")).count();
            assertEquals(openClHere() ? OpenClBackend.all().size() : 0, cl);
        } finally {
            closeAll(all);
        }
    }

    @Test
    void filterPicksBackends() {
        List<Backend> javaOnly = Backends.forTests("true", "java");
        try {
            assertEquals(1, javaOnly.size());
            assertInstanceOf(JavaBackend.class, javaOnly.getFirst());
        } finally {
            closeAll(javaOnly);
        }
        List<Backend> clOnly = Backends.forTests(null, " OpenCL ");
        try {
            assertTrue(clOnly.stream().allMatch(b -> b.name().equals("opencl")));
        } finally {
            closeAll(clOnly);
        }
    }

    @Test
    void ciTrueWithoutOpenClFailsInsteadOfSkipping() {
        for (java.util.function.Supplier<List<java.lang.foreign.MemorySegment[]>> none : List.<java.util.function.Supplier<List<java.lang.foreign.MemorySegment[]>>>of(
                List::of, () -> {
                    throw new KernelException("cannot load the OpenCL ICD loader");
                })) {
            KernelException e = assertThrows(KernelException.class, () -> Backends.forTests("true", null, none));
            assertEquals("CI=true but no OpenCL platform: install pocl-opencl-icd ocl-icd-libopencl1", e.getMessage());
            for (String ci : new String[]{null, "", "false", "1"}) {
                List<Backend> lenient = Backends.forTests(ci, null, none);
                try {
                    assertEquals("java", lenient.getFirst().name());
                    assertTrue(lenient.stream().noneMatch(b -> b.name().equals("opencl")));
                } finally {
                    closeAll(lenient);
                }
            }
            List<Backend> javaOnly = Backends.forTests("true", "java", none);
            assertEquals(1, javaOnly.size(), "CI only insists on OpenCL when OpenCL is asked for");
            closeAll(javaOnly);
            KernelException named = assertThrows(KernelException.class, () -> Backends.forTests(null, "java,opencl", none));
            assertTrue(named.getMessage().contains("names opencl"), named.getMessage());
        }
        if (openClHere()) {
            List<Backend> all = Backends.forTests("true", null);
            try {
                assertTrue(all.stream().anyMatch(b -> b.name().equals("opencl")));
            } finally {
                closeAll(all);
            }
        }
    }

    @Test
    void cudaNamedInTheFilterMustOpen() {
        boolean cuda;
        try (Backend b = Backends.open("cuda")) {
            cuda = true;
        } catch (KernelException e) {
            cuda = false;
        }
        if (cuda) {
            List<Backend> bs = Backends.forTests(null, "cuda");
            assertEquals("cuda", bs.getFirst().name());
            closeAll(bs);
        } else {
            assertThrows(KernelException.class, () -> Backends.forTests(null, "cuda"));
            List<Backend> all = Backends.forTests(null, null);
            assertTrue(all.stream().noneMatch(b -> b.name().equals("cuda")), "without a filter a missing CUDA is a skip");
            closeAll(all);
        }
    }

    @Test
    void openByName() {
        try (Backend j = Backends.open("java")) {
            assertEquals("java", j.name());
        }
        try (Backend a = Backends.open("auto")) {
            assertFalse(a.name().isEmpty());
            if (a.name().equals("opencl")) assertTrue(((OpenClBackend) a).gpu, "auto never picks an OpenCL CPU device");
        }
        if (openClHere()) {
            try (Backend cl = Backends.open("opencl")) {
                assertEquals("opencl", cl.name());
            }
        }
        KernelException e = assertThrows(KernelException.class, () -> Backends.open("metal"));
        assertTrue(e.getMessage().contains("metal"));
    }

    @Test
    void describeListsDevicesAndTheAutoPick() {
        String d = Backends.describe();
        assertTrue(d.contains("java:"), d);
        assertTrue(d.contains("auto picks:"), d);
        assertTrue(d.contains("CUDA"), d);
        if (openClHere()) assertTrue(d.contains("OpenCL platform #0"), d);
    }
}
