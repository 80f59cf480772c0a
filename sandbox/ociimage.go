package main

// A minimal OCI image writer: one uncompressed layer of the given files, a
// config with the entrypoint, user and ports, written as an OCI layout in a
// tar archive that `ctr images import` accepts. It is how the node gets its
// pause image and tests get their workloads without a registry or Docker.

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"runtime"
	"sort"
	"strings"
	"time"
)

type imageFile struct {
	Source string // file on this machine
	Target string // absolute path in the image
	Mode   int64
}

type imageSpec struct {
	Ref        string
	Files      []imageFile
	Entrypoint []string
	User       string
	Ports      []string
	Env        []string
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *ociPlatform      `json:"platform,omitempty"`
}

type ociPlatform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
}

const (
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
)

// epoch: every timestamp in the image, so the same inputs give the same digests.
var epoch = time.Unix(0, 0).UTC()

// writeImageArchive writes spec as an OCI layout tar at out.
func writeImageArchive(out string, spec imageSpec) error {
	if spec.Ref == "" || len(spec.Files) == 0 {
		return errors.New("an image needs a reference and at least one file")
	}
	layer, err := layerTar(spec.Files)
	if err != nil {
		return err
	}
	layerDigest := digestOf(layer)
	exposed := map[string]struct{}{}
	for _, p := range spec.Ports {
		if !strings.Contains(p, "/") {
			p += "/tcp"
		}
		exposed[p] = struct{}{}
	}
	cfg := map[string]any{
		"created":      epoch.Format(time.RFC3339),
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config": map[string]any{
			"Entrypoint":   spec.Entrypoint,
			"User":         spec.User,
			"Env":          append([]string{"PATH=/"}, spec.Env...),
			"ExposedPorts": exposed,
			"WorkingDir":   "/",
		},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{layerDigest}},
	}
	cfgJSON, _ := json.Marshal(cfg)
	manifest := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaManifest,
		"config":        ociDescriptor{MediaType: mediaConfig, Digest: digestOf(cfgJSON), Size: int64(len(cfgJSON))},
		"layers":        []ociDescriptor{{MediaType: mediaLayer, Digest: layerDigest, Size: int64(len(layer))}},
	}
	manifestJSON, _ := json.Marshal(manifest)
	index := map[string]any{
		"schemaVersion": 2,
		"mediaType":     mediaIndex,
		"manifests": []ociDescriptor{{
			MediaType: mediaManifest, Digest: digestOf(manifestJSON), Size: int64(len(manifestJSON)),
			// containerd names the image after the first; tools following the
			// OCI spec read the second.
			Annotations: map[string]string{
				"io.containerd.image.name":          spec.Ref,
				"org.opencontainers.image.ref.name": spec.Ref,
			},
			Platform: &ociPlatform{Architecture: runtime.GOARCH, OS: "linux"},
		}},
	}
	indexJSON, _ := json.Marshal(index)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, b []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(b)
		return err
	}
	blob := func(b []byte) string { return "blobs/sha256/" + strings.TrimPrefix(digestOf(b), "sha256:") }
	for _, e := range []struct {
		name string
		b    []byte
	}{
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
		{"index.json", indexJSON},
		{blob(manifestJSON), manifestJSON},
		{blob(cfgJSON), cfgJSON},
		{blob(layer), layer},
	} {
		if err := add(e.name, e.b); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	tmp := out + ".tmp"
	if err := os.WriteFile(tmp, buf.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, out)
}

// layerTar packs the files, with their parent directories, owned by root.
func layerTar(files []imageFile) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	sorted := append([]imageFile(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Target < sorted[j].Target })
	for _, f := range sorted {
		if !path.IsAbs(f.Target) {
			return nil, fmt.Errorf("image path %q is not absolute", f.Target)
		}
		var parents []string
		for d := path.Dir(f.Target); d != "/"; d = path.Dir(d) {
			parents = append([]string{d}, parents...)
		}
		for _, d := range parents {
			if dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(d, "/") + "/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}); err != nil {
				return nil, err
			}
		}
		b, err := os.ReadFile(f.Source)
		if err != nil {
			return nil, err
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o755
		}
		if err := tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(f.Target, "/"), Mode: mode, Size: int64(len(b)), ModTime: epoch, Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(b); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// runOCIImage is `roster-sandbox oci-image`: writes an image archive for
// `ctr images import` (tests use it for their workloads).
func runOCIImage(args []string) error {
	fs := flag.NewFlagSet("oci-image", flag.ExitOnError)
	var (
		out        = fs.String("out", "", "archive to write (OCI layout in a tar)")
		ref        = fs.String("ref", "", "image reference, e.g. roster.local/echo:test")
		entrypoint = fs.String("entrypoint", "", "entrypoint, space-separated (default: the first file)")
		user       = fs.String("user", "65532:65532", "user:group the image runs as")
		files      multiFlag
		ports      multiFlag
		env        multiFlag
	)
	fs.Var(&files, "file", "SOURCE:TARGET, a file of this machine at an absolute path in the image (repeatable)")
	fs.Var(&ports, "port", "exposed port, e.g. 8080 (repeatable)")
	fs.Var(&env, "env", "NAME=VALUE of the image's environment (repeatable)")
	_ = fs.Parse(args)
	if *out == "" || *ref == "" || len(files) == 0 {
		return errors.New("--out, --ref and --file are required")
	}
	spec := imageSpec{Ref: *ref, User: *user, Ports: ports, Env: env}
	for _, f := range files {
		src, target, ok := strings.Cut(f, ":")
		if !ok {
			return fmt.Errorf("--file %q: want SOURCE:TARGET", f)
		}
		spec.Files = append(spec.Files, imageFile{Source: src, Target: target})
	}
	spec.Entrypoint = strings.Fields(*entrypoint)
	if len(spec.Entrypoint) == 0 {
		spec.Entrypoint = []string{spec.Files[0].Target}
	}
	return writeImageArchive(*out, spec)
}
