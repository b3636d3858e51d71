#!/usr/bin/env bash
# Packs everything the GPU machine needs into .device/ (git-ignored; pass ".device" in the device tool's carry):
# the GPU machine has no Java and no network, so it gets a jlink'ed Java 25 runtime (tar.xz), all jars, the test
# classes, the JUnit console launcher, and Debian's OpenCL ICD loader (libOpenCL.so.1).
# It builds the committed HEAD in a private copy (so half-edited files in the working tree don't matter);
# MODULES="tornado-kernels" packs only those modules (with their dependencies).
# Then run there:  bash bench/gpu-run.sh   (results under $OUT)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dev="$repo/.device"
root=/tmp/jd-pack
rm -rf "$root" && mkdir -p "$root" && git -C "$repo" archive HEAD | tar -x -C "$root"
cd "$root"
export JAVA_HOME=${JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
export PATH="$JAVA_HOME/bin:$PATH" MAVEN_OPTS="${MAVEN_OPTS:-} --sun-misc-unsafe-memory-access=allow"
modules=${MODULES:-bench}
mvn -B -q -o -DskipTests -pl "${modules// /,}" -am install
rm -rf "$dev/lib" "$dev/test"
mkdir -p "$dev/lib" "$dev/test" "$dev/ocl"
for m in loader tornado-kernels engine bench; do
  [ -f "$m/target/$m-0.1.0-SNAPSHOT.jar" ] || continue
  cp "$m/target/$m-0.1.0-SNAPSHOT.jar" "$dev/lib/"
  if [ -d "$m/target/test-classes" ]; then jar cf "$dev/test/$m-tests.jar" -C "$m/target/test-classes" .; fi
done
for m in ${modules}; do
  mvn -B -q -pl "$m" dependency:copy-dependencies -DincludeScope=test -DexcludeGroupIds=dev.jdiffusion -DoutputDirectory="$dev/lib"
done
# the console launcher brings JUnit itself; JMH is not used on the GPU machine
rm -f "$dev"/lib/junit-*.jar "$dev"/lib/opentest4j-*.jar "$dev"/lib/apiguardian-*.jar "$dev"/lib/jmh-*.jar "$dev"/lib/commons-math3-*.jar "$dev"/lib/jopt-simple-*.jar
mvn -B -q dependency:copy -Dartifact=org.junit.platform:junit-platform-console-standalone:1.14.1 -DoutputDirectory="$dev" -N
if [ ! -f "$dev/jre.tar.xz" ] || [ "${REPACK_JRE:-0}" = 1 ]; then
  rm -rf /tmp/jd-jre && "$JAVA_HOME/bin/jlink" --add-modules java.base,jdk.incubator.vector,java.desktop,java.logging,java.management,jdk.unsupported,java.xml,java.sql,jdk.zipfs \
    --strip-debug --no-man-pages --no-header-files --output /tmp/jd-jre 2>/dev/null
  tar -C /tmp -cJf "$dev/jre.tar.xz" jd-jre
fi
if [ ! -f "$dev/ocl/libOpenCL.so.1" ]; then
  tmp=$(mktemp -d) && (cd "$tmp" && apt-get download ocl-icd-libopencl1 >/dev/null 2>&1 && dpkg -x ocl-icd-libopencl1*.deb x)
  cp -L "$tmp"/x/usr/lib/x86_64-linux-gnu/libOpenCL.so.1 "$dev/ocl/libOpenCL.so.1"
fi
du -sh "$dev"
