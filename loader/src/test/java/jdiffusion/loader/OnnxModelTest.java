package jdiffusion.loader;

import jdiffusion.loader.onnx.Onnx.GraphProto;
import jdiffusion.loader.onnx.Onnx.ModelProto;
import jdiffusion.loader.onnx.Onnx.StringStringEntryProto;
import jdiffusion.loader.onnx.Onnx.TensorProto;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

import static org.junit.jupiter.api.Assertions.*;

class OnnxModelTest {
    static final Path TINY = Path.of(System.getProperty("tiny.sd", "engine/tiny-sd"));
    static final Path UNET_ONNX = TINY.resolve("unet/model.onnx");
    static final Path UNET_ST = TINY.resolve("unet/diffusion_pytorch_model.safetensors");
    static ModelProto proto;

    @BeforeAll
    static void read() throws IOException {
        proto = ModelProto.parseFrom(Files.readAllBytes(UNET_ONNX));
    }

    @Test
    void everyUnetWeightEqualsTheSafetensorsOne() {
        try (OnnxModel onnx = OnnxModel.open(UNET_ONNX); SafeTensors st = SafeTensors.open(UNET_ST)) {
            assertEquals(new TreeSet<>(st.names()), new TreeSet<>(onnx.names()), "parameter names");
            assertEquals("u.", onnx.strippedPrefix);
            for (String name : st.names()) {
                assertArrayEquals(st.info(name).shape(), onnx.info(name).shape(), name);
                assertEquals(TensorType.F32, onnx.info(name).type(), name);
                float[] a = st.floats(name), b = onnx.floats(name);
                for (int i = 0; i < a.length; i++)
                    assertEquals(Float.floatToRawIntBits(a[i]), Float.floatToRawIntBits(b[i]), () -> name + " differs");
                assertArrayEquals(st.halves(name), onnx.halves(name), name);
            }
            assertTrue(onnx.unmapped.isEmpty(), () -> "unmapped " + onnx.unmapped);
            assertEquals("onnx::MatMul_2386 (transposed)",
                    onnx.origin("down_blocks.1.attentions.0.transformer_blocks.0.attn1.to_q.weight"));
            assertTrue(onnx.origin("down_blocks.0.resnets.0.norm1.weight").endsWith("(squeezed)"));
        }
    }

    @Test
    void graphFacts() {
        try (OnnxModel m = OnnxModel.open(UNET_ONNX)) {
            assertEquals(Map.of("ai.onnx", 17L), m.opset);
            assertEquals(1772, m.nodeCount);
            assertEquals(84, m.opTypes.get("MatMul"));
            assertEquals(31, m.opTypes.get("InstanceNormalization"));
            assertEquals(28, m.opTypes.size());
            assertEquals(304, m.initializerCount);
            assertEquals(List.of("sample", "timestep", "encoder_hidden_states"), m.inputs.stream().map(OnnxModel.Port::name).toList());
            assertEquals(List.of("batch", "4", "32", "32"), m.inputs.get(0).shape());
            assertEquals("FLOAT", m.inputs.get(0).type());
            assertEquals(List.of("batch", "77", "32"), m.inputs.get(2).shape());
            assertEquals("out_sample", m.outputs.get(0).name());
            assertTrue(m.producer.startsWith("pytorch"));
        }
    }

    @Test
    void scopes() {
        assertEquals("u.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q",
                OnnxModel.scope("/u/down_blocks.0/attentions.0/transformer_blocks.0/attn1/to_q/MatMul"));
        assertEquals("ff.net.0.proj", OnnxModel.scope("/ff/net.0/proj/MatMul"));
        assertNull(OnnxModel.scope("MatMul_12"));
        assertNull(OnnxModel.scope("/MatMul_12"));
    }

    /** The fixture rewritten with its weights in model.onnx_data, the way onnx.save(..., save_as_external_data=True) does. */
    static void writeExternal(Path dir) throws IOException {
        ByteArrayOutputStream data = new ByteArrayOutputStream();
        GraphProto.Builder g = proto.getGraph().toBuilder();
        for (int i = 0; i < g.getInitializerCount(); i++) {
            TensorProto t = g.getInitializer(i);
            long offset = data.size();
            t.getRawData().writeTo(data);
            while (data.size() % 64 != 0) data.write(0);
            g.setInitializer(i, t.toBuilder().clearRawData().setDataLocation(TensorProto.DataLocation.EXTERNAL)
                    .addExternalData(entry("location", "model.onnx_data"))
                    .addExternalData(entry("offset", Long.toString(offset)))
                    .addExternalData(entry("length", Long.toString(t.getRawData().size()))));
        }
        Files.write(dir.resolve("model.onnx"), proto.toBuilder().setGraph(g).build().toByteArray());
        Files.write(dir.resolve("model.onnx_data"), data.toByteArray());
    }

    static StringStringEntryProto entry(String k, String v) {
        return StringStringEntryProto.newBuilder().setKey(k).setValue(v).build();
    }

    @Test
    void externalData(@TempDir Path dir) throws IOException {
        writeExternal(dir);
        assertTrue(Files.size(dir.resolve("model.onnx")) < Files.size(UNET_ONNX) / 4);
        try (OnnxModel ext = OnnxModel.open(dir.resolve("model.onnx")); OnnxModel in = OnnxModel.open(UNET_ONNX)) {
            assertEquals(in.names(), ext.names());
            for (String n : in.names()) assertArrayEquals(in.floats(n), ext.floats(n), n);
        }
        Path data = dir.resolve("model.onnx_data");
        byte[] all = Files.readAllBytes(data);
        Files.write(data, Arrays.copyOf(all, all.length / 2));
        var e = assertThrows(LoaderException.class, () -> OnnxModel.open(dir.resolve("model.onnx")));
        assertTrue(e.getMessage().contains("model.onnx_data") && e.getMessage().contains("too short"), e.getMessage());
        Files.delete(data);
        e = assertThrows(LoaderException.class, () -> OnnxModel.open(dir.resolve("model.onnx")));
        assertTrue(e.getMessage().contains("model.onnx_data") && e.getMessage().contains("missing"), e.getMessage());
    }

    @Test
    void externalLocationMustStayInTheModelFolder(@TempDir Path dir) throws IOException {
        TensorProto t = tensor("w.weight", 1, ByteBuffer.allocate(8)).toBuilder().clearRawData()
                .setDataLocation(TensorProto.DataLocation.EXTERNAL).addExternalData(entry("location", "../secret")).build();
        Path f = dir.resolve("m.onnx");
        Files.write(f, model(t).toByteArray());
        var e = assertThrows(LoaderException.class, () -> OnnxModel.open(f));
        assertTrue(e.getMessage().contains("outside the model folder"), e.getMessage());
    }

    static TensorProto tensor(String name, int dataType, ByteBuffer raw) {
        return TensorProto.newBuilder().setName(name).setDataType(dataType).addDims(2).addDims(1)
                .setRawData(com.google.protobuf.ByteString.copyFrom(raw.array())).build();
    }

    static ModelProto model(TensorProto... inits) {
        GraphProto.Builder g = GraphProto.newBuilder().setName("g");
        for (TensorProto t : inits) g.addInitializer(t);
        return ModelProto.newBuilder().setIrVersion(8).setGraph(g).build();
    }

    @Test
    void dtypesFromRawAndTypedFields() {
        ByteBuffer f16 = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN)
                .putShort(Float.floatToFloat16(1.5f)).putShort(Float.floatToFloat16(-2f));
        ByteBuffer bf16 = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN)
                .putShort((short) (Float.floatToIntBits(3f) >>> 16)).putShort((short) (Float.floatToIntBits(-0.5f) >>> 16));
        ByteBuffer i64 = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(7).putLong(-9);
        TensorProto typedF32 = TensorProto.newBuilder().setName("a.typed_f32").setDataType(1).addDims(2).addFloatData(0.25f).addFloatData(4f).build();
        TensorProto typedF16 = TensorProto.newBuilder().setName("a.typed_f16").setDataType(10).addDims(2)
                .addInt32Data(Float.floatToFloat16(1.5f) & 0xffff).addInt32Data(Float.floatToFloat16(-2f) & 0xffff).build();
        TensorProto typedI32 = TensorProto.newBuilder().setName("a.typed_i32").setDataType(6).addDims(2).addInt32Data(3).addInt32Data(-4).build();
        TensorProto typedI64 = TensorProto.newBuilder().setName("a.typed_i64").setDataType(7).addDims(2).addInt64Data(5).addInt64Data(6).build();
        ModelProto m = model(tensor("a.f16", 10, f16), tensor("a.bf16", 16, bf16), tensor("a.i64", 7, i64),
                typedF32, typedF16, typedI32, typedI64);
        try (OnnxModel o = OnnxModel.parse(Path.of("mem.onnx"), m.toByteArray())) {
            assertArrayEquals(new float[] {1.5f, -2f}, o.floats("a.f16"));
            assertEquals(TensorType.F16, o.info("a.f16").type());
            assertArrayEquals(new short[] {Float.floatToFloat16(1.5f), Float.floatToFloat16(-2f)}, o.halves("a.f16"));
            assertArrayEquals(new float[] {3f, -0.5f}, o.floats("a.bf16"));
            assertEquals(TensorType.BF16, o.info("a.bf16").type());
            assertArrayEquals(new float[] {7f, -9f}, o.floats("a.i64"));
            assertArrayEquals(new float[] {0.25f, 4f}, o.floats("a.typed_f32"));
            assertArrayEquals(new float[] {1.5f, -2f}, o.floats("a.typed_f16"));
            assertArrayEquals(new float[] {3f, -4f}, o.floats("a.typed_i32"));
            assertArrayEquals(new float[] {5f, 6f}, o.floats("a.typed_i64"));
            assertArrayEquals(new long[] {2, 1}, o.info("a.f16").shape());
            var e = assertThrows(LoaderException.class, () -> o.floats("a.nothing"));
            assertTrue(e.getMessage().contains("a.nothing"));
        }
    }

    @Test
    void badTensorsAreNamed() {
        var e = assertThrows(LoaderException.class,
                () -> OnnxModel.parse(Path.of("d.onnx"), model(tensor("a.double", 11, ByteBuffer.allocate(16))).toByteArray()));
        assertTrue(e.getMessage().contains("a.double") && e.getMessage().contains("DOUBLE"), e.getMessage());
        e = assertThrows(LoaderException.class,
                () -> OnnxModel.parse(Path.of("s.onnx"), model(tensor("a.short", 1, ByteBuffer.allocate(7))).toByteArray()));
        assertTrue(e.getMessage().contains("a.short") && e.getMessage().contains("raw_data"), e.getMessage());
        e = assertThrows(LoaderException.class, () -> OnnxModel.parse(Path.of("junk.onnx"), "not a model at all".getBytes()));
        assertTrue(e.getMessage().contains("junk.onnx"), e.getMessage());
        TensorProto huge = TensorProto.newBuilder().setName("a.huge").setDataType(1)
                .addDims(1L << 40).addDims(1L << 40).setRawData(com.google.protobuf.ByteString.copyFrom(new byte[4])).build();
        e = assertThrows(LoaderException.class, () -> OnnxModel.parse(Path.of("h.onnx"), model(huge).toByteArray()));
        assertTrue(e.getMessage().contains("a.huge"), e.getMessage());
    }

    @Test
    void over2GiBWithoutExternalDataIsAClearError(@TempDir Path dir) throws IOException {
        Path f = dir.resolve("big.onnx");
        try (RandomAccessFile r = new RandomAccessFile(f.toFile(), "rw")) {
            r.setLength(3L << 30); // sparse: no disk used
        }
        var e = assertThrows(LoaderException.class, () -> OnnxModel.open(f));
        assertTrue(e.getMessage().contains("big.onnx") && e.getMessage().contains("external data"), e.getMessage());
        e = assertThrows(LoaderException.class, () -> OnnxModel.open(dir.resolve("absent.onnx")));
        assertTrue(e.getMessage().contains("absent.onnx"), e.getMessage());
    }
}
