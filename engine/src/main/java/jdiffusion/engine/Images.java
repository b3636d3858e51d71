package jdiffusion.engine;

import java.awt.image.BufferedImage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;

/** Postprocessing of VAE output like diffusers' VaeImageProcessor (denormalize, numpy_to_pil) and PNG output. */
public final class Images {
    private Images() {
    }

    /** image / 2 + 0.5 clamped to [0, 1] (diffusers' denormalize), elementwise into a new array. */
    public static float[] denormalize(float[] decoded) {
        float[] out = new float[decoded.length];
        for (int i = 0; i < out.length; i++) out[i] = Math.clamp(decoded[i] / 2 + 0.5f, 0f, 1f);
        return out;
    }

    /** One 8-bit channel value as numpy_to_pil computes it: round-half-even of x * 255. */
    static int toByte(float x) {
        return (int) Math.rint(x * 255f);
    }

    /** decoded [batch, 3, height, width] in about [-1, 1] -> RGB images. */
    public static List<BufferedImage> toImages(float[] decoded, int batch, int height, int width) {
        long plane = (long) height * width;
        if (decoded.length != batch * 3 * plane)
            throw new IllegalArgumentException("decoded image has " + decoded.length + " values, expected [" + batch + ", 3, " + height + ", " + width + "]");
        float[] x = denormalize(decoded);
        List<BufferedImage> images = new ArrayList<>(batch);
        for (int b = 0; b < batch; b++) {
            BufferedImage img = new BufferedImage(width, height, BufferedImage.TYPE_INT_RGB);
            int base = (int) (b * 3 * plane);
            int[] rgb = new int[(int) plane];
            for (int p = 0; p < plane; p++) {
                int r = toByte(x[base + p]), g = toByte(x[base + (int) plane + p]), bl = toByte(x[base + 2 * (int) plane + p]);
                rgb[p] = (r << 16) | (g << 8) | bl;
            }
            img.setRGB(0, 0, width, height, rgb, 0, width);
            images.add(img);
        }
        return images;
    }

    /** Writes a PNG, creating parent folders. */
    public static void writePng(BufferedImage image, Path file) {
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) Files.createDirectories(parent);
            if (!ImageIO.write(image, "png", file.toFile())) throw new IOException("no PNG writer available");
        } catch (IOException e) {
            throw new UncheckedIOException("cannot write " + file + ": " + e.getMessage(), e);
        }
    }

    /** out.png -> out-0.png, out-1.png ... when there are several images; the name itself for one. */
    public static Path numbered(Path out, int index, int count) {
        if (count == 1) return out;
        String name = out.getFileName().toString();
        int dot = name.lastIndexOf('.');
        String stem = dot > 0 ? name.substring(0, dot) : name, ext = dot > 0 ? name.substring(dot) : ".png";
        return out.resolveSibling(stem + "-" + index + ext);
    }
}
