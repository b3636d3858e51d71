package jdiffusion.loader;

/**
 * The one exception the loader throws for bad input: truncated or hostile files, missing keys, wrong shapes or dtypes,
 * unknown formats. The message always names the file, and the tensor or key when there is one.
 */
public class LoaderException extends RuntimeException {
    public LoaderException(String message) {
        super(message);
    }

    public LoaderException(String message, Throwable cause) {
        super(message, cause);
    }
}
