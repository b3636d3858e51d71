package jdiffusion.loader;

import com.google.protobuf.ByteString;
import com.google.protobuf.CodedInputStream;
import com.google.protobuf.InvalidProtocolBufferException;
import jdiffusion.loader.onnx.Onnx.AttributeProto;
import jdiffusion.loader.onnx.Onnx.GraphProto;
import jdiffusion.loader.onnx.Onnx.ModelProto;
import jdiffusion.loader.onnx.Onnx.NodeProto;
import jdiffusion.loader.onnx.Onnx.OperatorSetIdProto;
import jdiffusion.loader.onnx.Onnx.StringStringEntryProto;
import jdiffusion.loader.onnx.Onnx.TensorProto;
import jdiffusion.loader.onnx.Onnx.TensorShapeProto;
import jdiffusion.loader.onnx.Onnx.ValueInfoProto;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.InvalidPathException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * The initializers of an ONNX model (for instance a UNet exported with torch.onnx) under diffusers parameter names.
 * An initializer keeps its name when the exporter did ("u.conv_in.weight", the common wrapper prefix "u." stripped);
 * an anonymous one ("onnx::MatMul_2386") is named from the scope of the node that consumes it
 * ("/u/down_blocks.1/attentions.0/transformer_blocks.0/attn1/to_q/MatMul" -> "...attn1.to_q.weight") and brought back to
 * PyTorch's layout: MatMul and Gemm(transB=0) weights [in,out] are transposed to [out,in], GroupNorm's gamma/beta
 * (exported as InstanceNormalization, Reshape, then Mul and Add by [C,1,1] initializers) are squeezed to [C].
 * Weights may live in the .onnx file (raw_data or typed fields) or in external files next to it (data_location=EXTERNAL).
 * A prefix shared by every name is a wrapper and is stripped ("u." here, "text_model." for a CLIP text encoder, as
 * DiffusersModel does); lookups with the prefix work too.
 * Knobs: -Djdiffusion.onnx.prefix=auto|none|PREFIX (the wrapper prefix to strip from every name).
 */
public final class OnnxModel implements Weights {
    /** A graph input or output: name, element type and shape (numbers, or symbols like "batch"). */
    public record Port(String name, String type, List<String> shape) {
        @Override
        public String toString() {
            return name + " " + type + " " + shape;
        }
    }

    private enum Layout { AS_STORED, TRANSPOSE, SQUEEZE }

    /** Where a parameter comes from: one initializer, possibly re-laid out. */
    private record Param(TensorProto tensor, Layout layout, int priority, TensorInfo info) {}

    private static final Pattern PARAMETER_NAME = Pattern.compile("[A-Za-z_][A-Za-z0-9_]*(\\.[A-Za-z0-9_]+)+");
    /** First name segments that are part of diffusers names, never a wrapper (a text encoder's "text_model." is a wrapper). */
    private static final Set<String> MODEL_ROOTS = Set.of("encoder", "decoder");
    static final String PREFIX = System.getProperty("jdiffusion.onnx.prefix", "auto");

    public final Path file;
    public final long irVersion;
    public final String producer;
    /** Operator set version per domain ("ai.onnx" for the default domain). */
    public final Map<String, Long> opset;
    /** ModelProto.metadata_props. */
    public final Map<String, String> metadata;
    public final int nodeCount;
    public final Map<String, Integer> opTypes;
    public final List<Port> inputs;
    public final List<Port> outputs;
    public final int initializerCount;
    /** The wrapper prefix that was stripped from every name ("" when none). */
    public final String strippedPrefix;
    /** Initializers that no parameter name was found for (constants the exporter folded, for instance). */
    public final List<String> unmapped;
    private final Map<String, Param> params;
    private final Map<Path, FileChannel> channels = new HashMap<>();

    private OnnxModel(Path file, ModelProto model) {
        this.file = file;
        if (!model.hasGraph()) throw new LoaderException(file + ": not an ONNX model (no graph)");
        GraphProto graph = model.getGraph();
        irVersion = model.getIrVersion();
        producer = (model.getProducerName() + " " + model.getProducerVersion()).strip();
        Map<String, Long> sets = new TreeMap<>();
        for (OperatorSetIdProto o : model.getOpsetImportList())
            sets.put(o.getDomain().isEmpty() ? "ai.onnx" : o.getDomain(), o.getVersion());
        opset = Collections.unmodifiableMap(sets);
        Map<String, String> meta = new LinkedHashMap<>();
        for (StringStringEntryProto e : model.getMetadataPropsList()) meta.put(e.getKey(), e.getValue());
        metadata = Collections.unmodifiableMap(meta);
        nodeCount = graph.getNodeCount();
        Map<String, Integer> ops = new TreeMap<>();
        for (NodeProto n : graph.getNodeList()) ops.merge(n.getOpType(), 1, Integer::sum);
        opTypes = Collections.unmodifiableMap(ops);
        Set<String> initNames = new LinkedHashSet<>();
        for (TensorProto t : graph.getInitializerList())
            if (!initNames.add(t.getName()))
                throw new LoaderException(file + ": initializer '" + t.getName() + "' appears twice");
        initializerCount = initNames.size();
        inputs = ports(graph.getInputList(), initNames);
        outputs = ports(graph.getOutputList(), Set.of());

        Map<String, Param> found = name(graph, initNames);
        strippedPrefix = prefix(found.keySet());
        Map<String, Param> named = new LinkedHashMap<>();
        Set<String> used = new LinkedHashSet<>();
        for (var e : found.entrySet()) {
            named.put(e.getKey().substring(strippedPrefix.length()), e.getValue());
            used.add(e.getValue().tensor.getName());
        }
        List<String> rest = new ArrayList<>();
        for (String n : initNames) if (!used.contains(n)) rest.add(n);
        unmapped = List.copyOf(rest);
        params = new LinkedHashMap<>();
        for (var e : named.entrySet()) {
            Param p = e.getValue();
            params.put(e.getKey(), new Param(p.tensor, p.layout, p.priority, check(e.getKey(), p)));
        }
    }

    public static OnnxModel open(Path file) {
        long size;
        try {
            size = Files.size(file);
        } catch (IOException e) {
            throw new LoaderException(file + ": can't read ONNX model: " + e, e);
        }
        if (size > Integer.MAX_VALUE - 64)
            throw new LoaderException(file + ": " + size + " bytes; a protobuf message over 2 GiB can't be parsed. "
                    + "Export it with external data (onnx save_as_external_data / torch.onnx.export(..., external_data=True)) "
                    + "so the weights go to a separate file such as model.onnx_data");
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(file);
        } catch (IOException e) {
            throw new LoaderException(file + ": can't read ONNX model: " + e, e);
        }
        return parse(file, bytes);
    }

    /** Parses a model held in memory; {@code file} names it and locates external data (relative to its folder). */
    public static OnnxModel parse(Path file, byte[] bytes) {
        ModelProto model;
        try {
            CodedInputStream in = CodedInputStream.newInstance(bytes);
            in.enableAliasing(true);
            in.setSizeLimit(Integer.MAX_VALUE);
            model = ModelProto.parseFrom(in);
        } catch (InvalidProtocolBufferException e) {
            throw new LoaderException(file + ": not a valid ONNX protobuf: " + e.getMessage(), e);
        } catch (IOException | RuntimeException e) {
            throw new LoaderException(file + ": can't parse ONNX protobuf: " + e, e);
        }
        return new OnnxModel(file, model);
    }

    // ---- naming ----

    /** Every parameter name found (before prefix stripping), best source first when several initializers compete. */
    private Map<String, Param> name(GraphProto graph, Set<String> initNames) {
        Map<String, TensorProto> inits = new HashMap<>();
        for (TensorProto t : graph.getInitializerList()) inits.put(t.getName(), t);
        Map<String, NodeProto> producers = new HashMap<>();
        for (NodeProto n : graph.getNodeList()) for (String o : n.getOutputList()) producers.put(o, n);

        Map<String, Param> found = new LinkedHashMap<>();
        for (TensorProto t : graph.getInitializerList())
            if (PARAMETER_NAME.matcher(t.getName()).matches())
                offer(found, t.getName(), new Param(t, Layout.AS_STORED, 3, null));
        for (NodeProto n : graph.getNodeList()) {
            String scope = scope(n.getName());
            if (scope == null) continue;
            for (int i = 0; i < n.getInputCount(); i++) {
                TensorProto t = inits.get(n.getInput(i));
                if (t == null || PARAMETER_NAME.matcher(t.getName()).matches()) continue;
                String other = n.getInputCount() == 2 ? n.getInput(1 - i) : "";
                String suffix = null;
                Layout layout = Layout.AS_STORED;
                int priority = 2;
                switch (n.getOpType()) {
                    case "MatMul" -> {
                        if (i == 1) {
                            suffix = "weight";
                            layout = t.getDimsCount() == 2 ? Layout.TRANSPOSE : Layout.AS_STORED;
                        }
                    }
                    case "Gemm" -> {
                        if (i == 1) {
                            suffix = "weight";
                            layout = intAttr(n, "transB", 0) == 1 || t.getDimsCount() != 2 ? Layout.AS_STORED : Layout.TRANSPOSE;
                        } else if (i == 2) suffix = "bias";
                    }
                    case "Conv", "ConvTranspose", "LayerNormalization", "GroupNormalization" -> {
                        if (i == 1) suffix = "weight";
                        else if (i == 2) suffix = "bias";
                    }
                    case "InstanceNormalization" -> {
                        // GroupNorm's own scale/bias are per group: the affine gamma/beta come through Mul/Add after it
                        if (i == 1) suffix = "weight";
                        else if (i == 2) suffix = "bias";
                        priority = 1;
                    }
                    case "BatchNormalization" -> suffix = switch (i) {
                        case 1 -> "weight";
                        case 2 -> "bias";
                        case 3 -> "running_mean";
                        case 4 -> "running_var";
                        default -> null;
                    };
                    case "Gather" -> {
                        if (i == 0) suffix = "weight";
                    }
                    case "Mul" -> {
                        if (afterNormalization(producers.get(other), producers)) {
                            suffix = "weight";
                            layout = Layout.SQUEEZE;
                        }
                    }
                    case "Add" -> {
                        NodeProto p = producers.get(other);
                        if (p != null && (p.getOpType().equals("MatMul") || p.getOpType().equals("Conv")
                                || p.getOpType().equals("Mul") && afterNormalization(producers.get(otherInput(p, inits)), producers))) {
                            suffix = "bias";
                            layout = p.getOpType().equals("MatMul") ? Layout.AS_STORED : Layout.SQUEEZE;
                        }
                    }
                    default -> { }
                }
                if (suffix != null) offer(found, scope + "." + suffix, new Param(t, layout, priority, null));
            }
        }
        return found;
    }

    private static void offer(Map<String, Param> found, String name, Param p) {
        Param old = found.get(name);
        if (old == null || p.priority > old.priority) found.put(name, p);
    }

    /** "/u/down_blocks.0/attentions.0/proj_in/Conv" -> "u.down_blocks.0.attentions.0.proj_in"; null without a scope. */
    static String scope(String nodeName) {
        int last = nodeName.lastIndexOf('/');
        if (last <= 0) return null;
        String s = nodeName.substring(nodeName.startsWith("/") ? 1 : 0, last).replace('/', '.');
        return PARAMETER_NAME.matcher(s + ".x").matches() ? s : null;
    }

    private static boolean afterNormalization(NodeProto p, Map<String, NodeProto> producers) {
        for (int hops = 0; p != null && hops < 3; hops++) {
            if (p.getOpType().equals("InstanceNormalization") || p.getOpType().equals("GroupNormalization")) return true;
            if (!p.getOpType().equals("Reshape") || p.getInputCount() == 0) return false;
            p = producers.get(p.getInput(0));
        }
        return false;
    }

    private static String otherInput(NodeProto mul, Map<String, TensorProto> inits) {
        for (String in : mul.getInputList()) if (!inits.containsKey(in)) return in;
        return "";
    }

    private static long intAttr(NodeProto n, String name, long dflt) {
        for (AttributeProto a : n.getAttributeList()) if (a.getName().equals(name)) return a.getI();
        return dflt;
    }

    /** The wrapper prefix shared by every name ("u." for a module that wrapped the UNet as self.u), or "". */
    private String prefix(Set<String> names) {
        if (PREFIX.equals("none") || names.isEmpty()) return "";
        if (!PREFIX.equals("auto")) {
            String p = PREFIX.endsWith(".") ? PREFIX : PREFIX + ".";
            for (String n : names) if (!n.startsWith(p)) return "";
            return p;
        }
        String first = null;
        for (String n : names) {
            int dot = n.indexOf('.');
            String root = n.substring(0, dot);
            if (first == null) first = root;
            else if (!first.equals(root)) return "";
            if (n.indexOf('.', dot + 1) < 0) return "";
        }
        return MODEL_ROOTS.contains(first) ? "" : first + ".";
    }

    private static List<Port> ports(List<ValueInfoProto> infos, Set<String> skip) {
        List<Port> out = new ArrayList<>();
        for (ValueInfoProto v : infos) {
            if (skip.contains(v.getName())) continue; // old exporters list initializers as inputs
            List<String> shape = new ArrayList<>();
            String type = "?";
            if (v.getType().hasTensorType()) {
                type = typeName(v.getType().getTensorType().getElemType());
                for (TensorShapeProto.Dimension d : v.getType().getTensorType().getShape().getDimList())
                    shape.add(d.hasDimValue() ? Long.toString(d.getDimValue()) : d.hasDimParam() ? d.getDimParam() : "?");
            }
            out.add(new Port(v.getName(), type, List.copyOf(shape)));
        }
        return List.copyOf(out);
    }

    static String typeName(int dataType) {
        TensorProto.DataType t = TensorProto.DataType.forNumber(dataType);
        return t == null ? "type#" + dataType : t.name();
    }

    static TensorType tensorType(int dataType) {
        return switch (dataType) {
            case 1 -> TensorType.F32;
            case 10 -> TensorType.F16;
            case 16 -> TensorType.BF16;
            case 7 -> TensorType.I64;
            case 6 -> TensorType.I32;
            default -> null;
        };
    }

    // ---- checks and data ----

    /** Validates dtype, dims and data size of one parameter; returns its info in PyTorch layout. */
    private TensorInfo check(String name, Param p) {
        TensorProto t = p.tensor;
        String what = file + ": tensor '" + name + "' (initializer '" + t.getName() + "')";
        TensorType type = tensorType(t.getDataType());
        if (type == null)
            throw new LoaderException(what + " has data type " + typeName(t.getDataType())
                    + "; supported are FLOAT, FLOAT16, BFLOAT16, INT64, INT32");
        long[] dims = new long[t.getDimsCount()];
        long elements = 1;
        for (int i = 0; i < dims.length; i++) {
            dims[i] = t.getDims(i);
            if (dims[i] < 0) throw new LoaderException(what + " has a negative dimension " + t.getDimsList());
            try {
                elements = Math.multiplyExact(elements, dims[i]);
            } catch (ArithmeticException e) {
                throw new LoaderException(what + " has dims " + t.getDimsList() + " whose product overflows", e);
            }
        }
        if (elements > Integer.MAX_VALUE - 8)
            throw new LoaderException(what + " has " + elements + " elements, more than a Java array holds");
        long bytes = elements * type.bytes;
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) external(what, t, bytes);
        else if (t.hasRawData()) {
            if (t.getRawData().size() != bytes)
                throw new LoaderException(what + " has " + t.getRawData().size() + " bytes of raw_data; dims "
                        + t.getDimsList() + " x " + type + " need " + bytes);
        } else {
            int have = switch (type) {
                case F32 -> t.getFloatDataCount();
                case F16, BF16, I32 -> t.getInt32DataCount();
                case I64 -> t.getInt64DataCount();
            };
            if (have != elements)
                throw new LoaderException(what + " has " + have + " typed values; dims " + t.getDimsList() + " need " + elements);
        }
        long[] shape = switch (p.layout) {
            case AS_STORED -> dims;
            case TRANSPOSE -> dims.length == 2 ? new long[] {dims[1], dims[0]} : dims;
            case SQUEEZE -> {
                int rank = dims.length;
                while (rank > 1 && dims[rank - 1] == 1) rank--;
                yield Arrays.copyOf(dims, rank);
            }
        };
        return new TensorInfo(name, type, shape);
    }

    private record External(Path path, long offset, long length) {}

    private External external(String what, TensorProto t, long bytes) {
        String location = null;
        long offset = 0, length = -1;
        for (StringStringEntryProto e : t.getExternalDataList()) {
            try {
                switch (e.getKey()) {
                    case "location" -> location = e.getValue();
                    case "offset" -> offset = Long.parseLong(e.getValue().strip());
                    case "length" -> length = Long.parseLong(e.getValue().strip());
                    default -> { }
                }
            } catch (NumberFormatException x) {
                throw new LoaderException(what + ": external data " + e.getKey() + " '" + e.getValue() + "' is not a number", x);
            }
        }
        if (location == null || location.isEmpty())
            throw new LoaderException(what + " is EXTERNAL but has no location");
        Path dir = file.toAbsolutePath().getParent();
        Path path;
        try {
            path = dir.resolve(location).normalize();
        } catch (InvalidPathException x) {
            throw new LoaderException(what + ": bad external data location '" + location + "'", x);
        }
        if (Path.of(location).isAbsolute() || !path.startsWith(dir))
            throw new LoaderException(what + ": external data location '" + location + "' is outside the model folder " + dir);
        if (offset < 0) throw new LoaderException(what + ": negative external data offset " + offset);
        if (length >= 0 && length != bytes)
            throw new LoaderException(what + ": external data length " + length + " but its dims and type need " + bytes + " bytes");
        if (!Files.isRegularFile(path))
            throw new LoaderException(what + ": external data file " + path + " is missing");
        long size;
        try {
            size = Files.size(path);
        } catch (IOException x) {
            throw new LoaderException(what + ": can't read external data file " + path + ": " + x, x);
        }
        if (offset > size || size - offset < bytes)
            throw new LoaderException(what + ": external data file " + path + " is too short: needs bytes [" + offset + ", "
                    + (offset + bytes) + ") but has " + size);
        return new External(path, offset, bytes);
    }

    private Param param(String name) {
        Param p = params.get(name);
        if (p == null && !strippedPrefix.isEmpty() && name.startsWith(strippedPrefix))
            p = params.get(name.substring(strippedPrefix.length()));
        if (p == null) throw new LoaderException(file + ": no tensor '" + name + "'");
        return p;
    }

    /** The stored bytes of a parameter, little-endian in its stored dtype and layout. */
    private ByteBuffer stored(String name, Param p) {
        TensorProto t = p.tensor;
        TensorType type = p.info.type();
        int n = (int) p.info.elements();
        if (t.getDataLocation() == TensorProto.DataLocation.EXTERNAL) {
            External x = external(file + ": tensor '" + name + "'", t, (long) n * type.bytes);
            ByteBuffer buf = ByteBuffer.allocate((int) x.length).order(ByteOrder.LITTLE_ENDIAN);
            try {
                FileChannel ch = channels.get(x.path);
                if (ch == null) channels.put(x.path, ch = FileChannel.open(x.path, StandardOpenOption.READ));
                long pos = x.offset;
                while (buf.hasRemaining()) {
                    int r = ch.read(buf, pos);
                    if (r < 0) throw new LoaderException(file + ": tensor '" + name + "': external data file " + x.path + " ended early");
                    pos += r;
                }
            } catch (IOException e) {
                throw new LoaderException(file + ": tensor '" + name + "': can't read " + x.path + ": " + e, e);
            }
            return buf.flip();
        }
        if (t.hasRawData()) {
            ByteString raw = t.getRawData();
            return raw.asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
        }
        ByteBuffer buf = ByteBuffer.allocate(n * type.bytes).order(ByteOrder.LITTLE_ENDIAN);
        for (int i = 0; i < n; i++)
            switch (type) {
                case F32 -> buf.putFloat(t.getFloatData(i));
                case F16, BF16 -> buf.putShort((short) t.getInt32Data(i));
                case I32 -> buf.putInt(t.getInt32Data(i));
                case I64 -> buf.putLong(t.getInt64Data(i));
            }
        return buf.flip();
    }

    /** Index in stored order of element {@code i} of the PyTorch-layout tensor. */
    private static int[] order(Param p) {
        if (p.layout != Layout.TRANSPOSE || p.info.shape().length != 2) return null;
        int rows = (int) p.info.shape()[0], cols = (int) p.info.shape()[1]; // PyTorch [out, in]; stored [in, out]
        int[] idx = new int[rows * cols];
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++) idx[r * cols + c] = c * rows + r;
        return idx;
    }

    @Override
    public String source() {
        return file.toString();
    }

    @Override
    public Set<String> names() {
        return Collections.unmodifiableSet(params.keySet());
    }

    @Override
    public boolean has(String name) {
        return params.containsKey(name)
                || !strippedPrefix.isEmpty() && name.startsWith(strippedPrefix) && params.containsKey(name.substring(strippedPrefix.length()));
    }

    @Override
    public TensorInfo info(String name) {
        return param(name).info;
    }

    /** Where a parameter came from, for Inspect: "onnx::MatMul_2386 (transposed)". */
    public String origin(String name) {
        Param p = param(name);
        return p.tensor.getName() + switch (p.layout) {
            case AS_STORED -> "";
            case TRANSPOSE -> " (transposed)";
            case SQUEEZE -> " (squeezed)";
        };
    }

    @Override
    public float[] floats(String name) {
        Param p = param(name);
        ByteBuffer b = stored(name, p);
        int n = (int) p.info.elements();
        int[] idx = order(p);
        float[] out = new float[n];
        for (int i = 0; i < n; i++) {
            int j = idx == null ? i : idx[i];
            out[i] = switch (p.info.type()) {
                case F32 -> b.getFloat(j * 4);
                case F16 -> Float.float16ToFloat(b.getShort(j * 2));
                case BF16 -> Float.intBitsToFloat(b.getShort(j * 2) << 16);
                case I32 -> b.getInt(j * 4);
                case I64 -> b.getLong(j * 8);
            };
        }
        return out;
    }

    @Override
    public short[] halves(String name) {
        Param p = param(name);
        if (p.info.type() != TensorType.F16) {
            float[] f = floats(name);
            short[] out = new short[f.length];
            for (int i = 0; i < f.length; i++) out[i] = Float.floatToFloat16(f[i]);
            return out;
        }
        ByteBuffer b = stored(name, p);
        int[] idx = order(p);
        short[] out = new short[(int) p.info.elements()];
        for (int i = 0; i < out.length; i++) out[i] = b.getShort((idx == null ? i : idx[i]) * 2);
        return out;
    }

    @Override
    public void close() {
        for (FileChannel ch : channels.values()) {
            try {
                ch.close();
            } catch (IOException ignored) {
                // nothing left to release
            }
        }
        channels.clear();
    }

    @Override
    public String toString() {
        return "OnnxModel[" + file + ", opset " + opset + ", " + nodeCount + " nodes, " + params.size() + " parameters]";
    }
}
