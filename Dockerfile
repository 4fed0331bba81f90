# The controller image the manifests deploy (ghcr.io/hnc-rs/hnc-controller), with the kubectl-hns plugin beside
# it. Build from the repository root:
#
#   docker build -t ghcr.io/hnc-rs/hnc-controller:$(git describe --tags --always) .
#
# Stage 1 builds both binaries statically linked (glibc, crt-static: no shared library is needed at run time)
# and without the embedded development API server (--no-default-features). Stage 2 is an empty image holding
# the two binaries: no shell, no package manager, nothing to write to, so the pod's readOnlyRootFilesystem and
# runAsNonRoot (manifests/deploy/20-deployment.yaml) hold. The controller reads its API server address, token
# and CA from the pod's service account mount and its environment, and serves the webhook certificate it reads
# from the Secret hnc-webhook-server-cert; it needs no file of the image besides itself.
FROM docker.io/library/rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
ENV CARGO_TERM_COLOR=never \
    RUSTFLAGS="-C target-feature=+crt-static"
RUN cargo build --release --locked --target x86_64-unknown-linux-gnu -p hnc-controller --no-default-features \
 && cargo build --release --locked --target x86_64-unknown-linux-gnu -p hnc-plugin \
 && mkdir /out \
 && cp target/x86_64-unknown-linux-gnu/release/hnc-controller target/x86_64-unknown-linux-gnu/release/kubectl-hns /out/ \
 && strip /out/hnc-controller /out/kubectl-hns

FROM scratch
COPY --from=build /out/hnc-controller /out/kubectl-hns /
# Any non-root UID works; the Deployment sets 1000:1000 (upstream's), this is the default for other runtimes.
USER 65532:65532
EXPOSE 9443 8080 8081
ENTRYPOINT ["/hnc-controller"]
