//go:build linux

package main

// The node: a private containerd and a kubelet for the data plane's Node,
// both in the data plane's node network namespace, so pods sit on a CNI
// bridge there and kube-proxy and CoreDNS serve them as they serve the
// namespace's own consumers.
//
//	rst-<dp>-node netns: eth0 198.18.B.2 (data plane) ── cni0 198.18.128+B.1/22
//	   kubelet :10250 on 198.18.B.2   containerd (socket <dir>/containerd.sock)
//	   pods: veth on cni0, 198.18.128+B.x, default route via cni0
//
// The node process runs in its own mount namespace: every mount containerd
// and the kubelet make (overlay roots, tmpfs volumes, pod network namespace
// files) lives and dies there, and it hides the host's /run/containerd,
// /var/lib/cni and /var/log/containers behind directories of the node's.
// Pods' cgroups live under /rst-<pid>-node in every cgroup hierarchy,
// with the node's own processes (containerd, its shims, the kubelet) in
// /rst-<pid>-node/runtime; a later run kills what is left there when <pid>
// is gone, which also frees that mount namespace.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// pauseImage is the pods' sandbox image, built from sandbox/pause and
// imported at start; the name never resolves to a registry.
const pauseImage = "roster.local/pause:1"

// nodeInfo is written to <dir>/node.json for the TypeScript side.
type nodeInfo struct {
	Name              string `json:"name"`
	Pid               int    `json:"pid"`
	Dir               string `json:"dir"`
	ContainerdAddress string `json:"containerdAddress"`
	ContainerdNS      string `json:"containerdNamespace"`
	PodCIDR           string `json:"podCIDR"`
	CgroupRoot        string `json:"cgroupRoot"`
	PauseImage        string `json:"pauseImage"`
	ClusterDNS        string `json:"clusterDNS"`
	Netns             string `json:"netns"`
	NodeIP            string `json:"nodeIP"`
	KubeletLog        string `json:"kubeletLog"`
	ContainerdLog     string `json:"containerdLog"`
	Kubeconfig        string `json:"kubeconfig"`
	APIServer         string `json:"apiServer"`
}

func runNode(args []string) error {
	fs := flag.NewFlagSet("node", flag.ExitOnError)
	var (
		dir         = fs.String("dir", "", "directory for containerd, the kubelet, configs and logs")
		kubeconfig  = fs.String("kubeconfig", "", "admin kubeconfig (waits for the Node to be Ready)")
		kubeletKC   = fs.String("kubelet-kubeconfig", "", "the kubelet's kubeconfig (system:node:"+nodeName+")")
		caFile      = fs.String("client-ca", "", "CA of the clients the kubelet accepts (the API server's)")
		planePath   = fs.String("dataplane", "", "dataplane.json of the data plane whose node namespace the node uses")
		withParent  = fs.Bool("exit-with-parent", false, "shut down when the parent process dies")
		importPaths multiFlag
	)
	fs.Var(&importPaths, "image", "OCI or Docker image archive to import into the node's containerd before ready (repeatable)")
	_ = fs.Parse(args)
	if *dir == "" || *kubeconfig == "" || *kubeletKC == "" || *planePath == "" || *caFile == "" {
		return errors.New("--dir, --kubeconfig, --kubelet-kubeconfig, --client-ca and --dataplane are required")
	}
	started := time.Now()
	var plane dataPlaneInfo
	b, err := os.ReadFile(*planePath)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, &plane); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	pauseBin := filepath.Join(filepath.Dir(self), "roster-pause")
	if _, err := os.Stat(pauseBin); err != nil {
		return fmt.Errorf("pause binary: %w (build it with `make node-images`)", err)
	}
	for _, tool := range []string{"containerd", "ctr", "runc", "nsenter", "nft", "/usr/lib/cni/bridge", "/usr/lib/cni/host-local", "/usr/lib/cni/loopback"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s is missing (`make node-deps` installs containerd, runc and containernetworking-plugins)", tool)
		}
	}
	if err := privateMounts(); err != nil {
		return err
	}
	reapStaleNodes()

	pid := os.Getpid()
	root, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	info := nodeInfo{
		Name: nodeName, Pid: pid, Dir: root,
		ContainerdAddress: filepath.Join(root, "containerd.sock"), ContainerdNS: "k8s.io",
		// The upper half of 198.18.0.0/16: data planes take /22 blocks of the
		// lower half (dataplane.go), each node the block 128 above its own.
		PodCIDR:    fmt.Sprintf("198.18.%d.0/22", 128+plane.Block*4),
		CgroupRoot: fmt.Sprintf("/rst-%d-node", pid),
		PauseImage: pauseImage, ClusterDNS: plane.DNS, Netns: plane.Node, NodeIP: plane.Node4,
		KubeletLog: filepath.Join(root, "kubelet.log"), ContainerdLog: filepath.Join(root, "containerd.log"),
		Kubeconfig: *kubeconfig,
	}
	if len(info.ContainerdAddress) > 100 {
		return fmt.Errorf("containerd socket path %s is too long for a unix socket: use a shorter --dir", info.ContainerdAddress)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *withParent {
		go watchParent()
	}

	for _, d := range []string{"containerd/root", "containerd/opt", "cni/net.d", "cni/ipam", "cni/cache", "kubelet", "pod-logs", "container-logs", "images"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			return err
		}
	}
	// Runtime state of an earlier run on this directory is stale: its
	// processes are gone (reapStaleNodes).
	_ = os.RemoveAll(filepath.Join(root, "containerd", "state"))
	_ = os.Remove(info.ContainerdAddress)
	if err := hideHostPaths(root); err != nil {
		return fmt.Errorf("mounts: %w", err)
	}
	if err := keepKernelDefaults(root); err != nil {
		return fmt.Errorf("kernel tunables: %w", err)
	}
	cg, err := makeCgroups(info.CgroupRoot)
	if err != nil {
		return fmt.Errorf("cgroups: %w", err)
	}
	home := ownCgroups()
	defer func() {
		// Out of the tree first: a group this process is in cannot be removed.
		for _, h := range cg {
			hier := filepath.Dir(h)
			_ = os.WriteFile(filepath.Join(hier, home[filepath.Base(hier)], "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644)
		}
		removeCgroups(info.CgroupRoot)
	}()
	for _, h := range cg {
		// Everything this process starts from now on is accounted there.
		if err := os.WriteFile(filepath.Join(h, "runtime", "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return fmt.Errorf("cgroups: %w", err)
		}
	}
	if err := podNetwork(root, info, plane); err != nil {
		return fmt.Errorf("pod network: %w", err)
	}
	apiPort, err := kubeconfigPort(*kubeconfig)
	if err != nil {
		return err
	}
	// The "kubernetes" Service's endpoint: the API server on the node's
	// address, forwarded to the host's loopback like the data plane's.
	if err := forwardAPIOn(plane.Node, plane.Node4, apiPort); err != nil {
		return fmt.Errorf("API forwarder: %w", err)
	}
	info.APIServer = net.JoinHostPort(plane.Node4, strconv.Itoa(apiPort))

	cfgPath := filepath.Join(root, "containerd.toml")
	if err := os.WriteFile(cfgPath, []byte(containerdConfig(root, info)), 0o600); err != nil {
		return err
	}
	containerdLog, err := os.OpenFile(info.ContainerdLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer containerdLog.Close()
	exited := make(chan error, 2)
	runtimeProc, err := startChild(inNetnsCmd(plane.Node, containerdLog, "containerd", "--config", cfgPath), info.ContainerdLog, exited)
	if err != nil {
		return err
	}
	var kubeletProc *child
	defer func() { stopNode(info, kubeletProc, runtimeProc) }()
	conn, err := waitCRI(ctx, info.ContainerdAddress, exited)
	if err != nil {
		return err
	}
	defer conn.Close()

	pauseTar := filepath.Join(root, "images", "pause.tar")
	if err := writeImageArchive(pauseTar, imageSpec{
		Ref: pauseImage, Files: []imageFile{{Source: pauseBin, Target: "/pause"}},
		Entrypoint: []string{"/pause"}, User: "65535:65535",
	}); err != nil {
		return fmt.Errorf("pause image: %w", err)
	}
	for _, archive := range append([]string{pauseTar}, importPaths...) {
		if err := importImage(info, archive); err != nil {
			return err
		}
	}

	kubeletCfg := filepath.Join(root, "kubelet.yaml")
	if err := os.WriteFile(kubeletCfg, []byte(kubeletConfig(root, *caFile, info)), 0o600); err != nil {
		return err
	}
	kubeletLog, err := os.OpenFile(info.KubeletLog, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer kubeletLog.Close()
	kubeletProc, err = startChild(inNetnsCmd(plane.Node, kubeletLog, self, "kubelet",
		"--config="+kubeletCfg,
		"--kubeconfig="+*kubeletKC,
		"--hostname-override="+nodeName,
		"--node-ip="+plane.Node4+","+plane.Node6,
		"--root-dir="+filepath.Join(root, "kubelet"),
		"--cert-dir="+filepath.Join(root, "kubelet", "pki"),
		"--node-labels=topology.kubernetes.io/zone="+plane.Zone,
		"--v=2",
	), info.KubeletLog, exited)
	if err != nil {
		return err
	}

	if err := waitNodeReady(ctx, *kubeconfig, info, exited); err != nil {
		return err
	}
	if err := kubernetesEndpoints(ctx, *kubeconfig, plane.Node4, apiPort); err != nil {
		return fmt.Errorf("kubernetes Service endpoints: %w", err)
	}
	b, _ = json.MarshalIndent(info, "", "  ")
	infoPath := filepath.Join(root, "node.json")
	if err := os.WriteFile(infoPath, b, 0o600); err != nil {
		return err
	}
	fmt.Printf("roster-node ready in %.1fs: info=%s node=%s pods=%s\n", time.Since(started).Seconds(), infoPath, nodeName, info.PodCIDR)
	select {
	case <-ctx.Done():
		return nil
	case err := <-exited:
		return err
	}
}

// privateMounts checks that this process has a mount namespace of its own
// (the sandbox starts it with CLONE_NEWNS; Go then makes "/" private).
func privateMounts() error {
	mine, err := os.Readlink("/proc/self/ns/mnt")
	if err != nil {
		return err
	}
	parent, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", os.Getppid()))
	if err == nil && parent == mine {
		return errors.New("the node needs its own mount namespace: run it through `roster-sandbox --node`")
	}
	return nil
}

// hideHostPaths puts directories of the node over the fixed host paths that
// containerd 1.6 and the kubelet write to (shim sockets, CNI result cache,
// container log links), in this mount namespace only.
func hideHostPaths(root string) error {
	for target, source := range map[string]string{
		"/run/containerd":     "", // tmpfs
		"/var/lib/cni":        filepath.Join(root, "cni", "cache"),
		"/var/log/containers": filepath.Join(root, "container-logs"),
	} {
		if err := os.MkdirAll(target, 0o755); err != nil {
			return err
		}
		var err error
		if source == "" {
			err = unix.Mount("tmpfs", target, "tmpfs", 0, "mode=0711")
		} else {
			err = unix.Mount(source, target, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("%s: %w", target, err)
		}
	}
	return nil
}

// keepKernelDefaults: the kubelet sets six host-wide sysctls it expects
// (vm.overcommit_memory=1, kernel.panic=10, kernel.panic_on_oops=1, ...)
// unless protectKernelDefaults, which makes it refuse to start instead. The
// sandbox must not change the machine's kernel settings, so in this mount
// namespace a file holding the expected value is bound over each one that
// differs: the kubelet reads what it wants and writes nothing.
func keepKernelDefaults(root string) error {
	want := map[string]int{
		"vm/overcommit_memory":      1,
		"vm/panic_on_oom":           0,
		"kernel/panic":              10,
		"kernel/panic_on_oops":      1,
		"kernel/keys/root_maxkeys":  1000000,
		"kernel/keys/root_maxbytes": 25000000,
	}
	dir := filepath.Join(root, "sysctl")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, v := range want {
		path := "/proc/sys/" + name
		cur, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.TrimSpace(string(cur)) == strconv.Itoa(v) {
			continue
		}
		fake := filepath.Join(dir, strings.ReplaceAll(name, "/", "."))
		if err := os.WriteFile(fake, []byte(strconv.Itoa(v)+"\n"), 0o644); err != nil {
			return err
		}
		if err := unix.Mount(fake, path, "", unix.MS_BIND|unix.MS_RDONLY, ""); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	}
	return nil
}

// cgroupHierarchies lists the mounted cgroup v1 hierarchies and the v2 one.
func cgroupHierarchies() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		for i, x := range fields {
			if x == "-" && i+1 < len(fields) && (fields[i+1] == "cgroup" || fields[i+1] == "cgroup2") {
				out = append(out, fields[4])
			}
		}
	}
	sort.Strings(out)
	return out
}

// makeCgroups creates <root> (and <root>/runtime for the node's own
// processes) in each hierarchy and returns the hierarchies whose runtime
// group this process joins.
func makeCgroups(root string) ([]string, error) {
	var joined []string
	for _, h := range cgroupHierarchies() {
		for _, d := range []string{root, root + "/runtime"} {
			p := filepath.Join(h, d)
			if err := os.MkdirAll(p, 0o755); err != nil {
				return nil, err
			}
			// A new cpuset group has no CPUs or memory nodes until given some.
			if filepath.Base(h) == "cpuset" {
				for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
					v, err := os.ReadFile(filepath.Join(filepath.Dir(p), f))
					if err != nil {
						return nil, err
					}
					if err := os.WriteFile(filepath.Join(p, f), v, 0o644); err != nil {
						return nil, err
					}
				}
			}
		}
		// Only pids and freezer: they track and stop processes, and leave
		// memory and CPU accounting of this process where it was.
		if b := filepath.Base(h); b == "pids" || b == "freezer" {
			joined = append(joined, filepath.Join(h, root))
		}
	}
	return joined, nil
}

// ownCgroups maps each v1 controller (pids, freezer, ...) to this
// process's group in it.
func ownCgroups() map[string]string {
	out := map[string]string{}
	b, _ := os.ReadFile("/proc/self/cgroup")
	for _, line := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 {
			for _, c := range strings.Split(parts[1], ",") {
				out[c] = parts[2]
			}
		}
	}
	return out
}

// cgroupProcs lists every process in the tree under <h>/<root>.
func cgroupProcs(root string) []int {
	var pids []int
	for _, h := range cgroupHierarchies() {
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			b, _ := os.ReadFile(p)
			for _, f := range strings.Fields(string(b)) {
				if n, err := strconv.Atoi(f); err == nil && n != os.Getpid() {
					pids = append(pids, n)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroups kills whatever is left in the tree and removes it, deepest
// groups first.
func removeCgroups(root string) {
	for i := 0; i < 50; i++ {
		left := cgroupProcs(root)
		if len(left) == 0 {
			break
		}
		for _, p := range left {
			_ = unix.Kill(p, unix.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, h := range cgroupHierarchies() {
		var dirs []string
		_ = filepath.WalkDir(filepath.Join(h, root), func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			_ = unix.Rmdir(dirs[i])
		}
	}
}

var staleNodeCgroup = regexp.MustCompile(`^rst-(\d+)-node$`)

// reapStaleNodes removes the cgroups (and so the processes, and with them
// the mount namespace and its mounts) of node runs whose process is gone.
func reapStaleNodes() {
	seen := map[string]bool{}
	for _, h := range cgroupHierarchies() {
		entries, _ := os.ReadDir(h)
		for _, e := range entries {
			if m := staleNodeCgroup.FindStringSubmatch(e.Name()); m != nil && !seen[e.Name()] {
				seen[e.Name()] = true
				if pid, _ := strconv.Atoi(m[1]); !alive(pid) {
					removeCgroups("/" + e.Name())
				}
			}
		}
	}
}

// podNetwork writes the CNI configuration (bridge cni0 in the node
// namespace, host-local addresses from the node's pod block) and the node
// namespace's rules for pod traffic.
func podNetwork(root string, info nodeInfo, plane dataPlaneInfo) error {
	conf := map[string]any{
		"cniVersion": "0.4.0",
		"name":       "roster-pods",
		"plugins": []any{
			map[string]any{
				"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
				"ipam": map[string]any{
					"type":    "host-local",
					"ranges":  [][]map[string]string{{{"subnet": info.PodCIDR}}},
					"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
					"dataDir": filepath.Join(root, "cni", "ipam"),
				},
			},
		},
	}
	b, _ := json.MarshalIndent(conf, "", "  ")
	if err := os.WriteFile(filepath.Join(root, "cni", "net.d", "10-roster.conflist"), b, 0o600); err != nil {
		return err
	}
	// The node namespace forwards between pods, its own addresses and the
	// fabric. Replies from test hosts and the host come back to the node's
	// address (they have no route to pods), and a pod reaching a Service
	// backed by a pod on the same bridge is masqueraded so the reply
	// returns through the node's conntrack.
	rules := fmt.Sprintf(`table ip roster-node {
	chain postrouting {
		type nat hook postrouting priority srcnat + 10; policy accept;
		ip saddr %[1]s ip daddr != %[1]s oifname "eth0" masquerade
		ip saddr %[1]s ip daddr %[1]s ct status dnat oifname "cni0" masquerade
	}
}
`, info.PodCIDR)
	rulesPath := filepath.Join(root, "pods.nft")
	if err := os.WriteFile(rulesPath, []byte(rules), 0o600); err != nil {
		return err
	}
	if out, err := exec.Command("nsenter", "--net=/var/run/netns/"+plane.Node, "nft", "-f", rulesPath).CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %v: %s", err, out)
	}
	return inNetns(plane.Node, func() error {
		return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644)
	})
}

func containerdConfig(root string, info nodeInfo) string {
	q := strconv.Quote
	return fmt.Sprintf(`version = 2
root = %s
state = %s
# Snapshotters and plugins the node does not use, so none probes the host.
disabled_plugins = ["io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = %s

[ttrpc]
  address = %s

[plugins."io.containerd.internal.v1.opt"]
  path = %s

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %s
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  # Pod network namespace files under the state dir, in the node's mount namespace.
  netns_mounts_under_state_dir = true
  enable_selinux = false
  # Machines that withhold CAP_SYS_RESOURCE (this one's sandboxes do) refuse
  # a lower oom_score_adj: runc would fail every pod with "failed to update
  # /proc/self/oom_score_adj: Permission denied". Clamp to containerd's own.
  restrict_oom_score_adj = true

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
        BinaryName = "runc"
        Root = %s

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = %s
    max_conf_num = 1
`, q(filepath.Join(root, "containerd", "root")), q(filepath.Join(root, "containerd", "state")),
		q(info.ContainerdAddress), q(info.ContainerdAddress+".ttrpc"),
		q(filepath.Join(root, "containerd", "opt")), q(pauseImage),
		q(filepath.Join(root, "containerd", "state", "runc")), q(filepath.Join(root, "cni", "net.d")))
}

func kubeletConfig(root, caFile string, info nodeInfo) string {
	q := strconv.Quote
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %s}
authorization:
  mode: Webhook
containerRuntimeEndpoint: %s
# cgroup v1 (hybrid) hosts: kubelet 1.36 still runs there when told so, and
# containerd 1.6 has no RuntimeConfig RPC, so the kubelet's own driver is used.
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: %s
cgroupsPerQOS: true
failSwapOn: false
clusterDNS: [%s]
clusterDomain: cluster.local
# No host resolver for pods: ClusterFirst pods get CoreDNS only, and
# dnsPolicy Default pods no nameserver.
resolvConf: ""
podLogsDir: %s
# Images are imported, never pulled: keep them whatever the disk says.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 50Mi
  nodefs.available: 1%%
  nodefs.inodesFree: 1%%
  imagefs.available: 1%%
makeIPTablesUtilChains: false
serializeImagePulls: false
nodeStatusUpdateFrequency: 10s
staticPodPath: ""
maxPods: 110
`, info.NodeIP, q(caFile), q("unix://"+info.ContainerdAddress), info.CgroupRoot, info.ClusterDNS, q(filepath.Join(root, "pod-logs")))
}

// inNetnsCmd runs bin in the named network namespace only (nsenter keeps
// this process's mount namespace, unlike `ip netns exec`).
func inNetnsCmd(ns string, log io.Writer, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command("nsenter", append([]string{"--net=/var/run/netns/" + ns, "--", bin}, args...)...)
	cmd.Stdout = log
	cmd.Stderr = log
	dieWithParent(cmd)
	return cmd
}

func waitCRI(ctx context.Context, sock string, exited <-chan error) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, err
	}
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	deadline := time.After(time.Minute)
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := rt.Status(cctx, &runtimeapi.StatusRequest{})
		cancel()
		if err == nil && st.Status != nil {
			return conn, nil
		}
		select {
		case err := <-exited:
			conn.Close()
			return nil, err
		case <-ctx.Done():
			conn.Close()
			return nil, errors.New("interrupted before ready")
		case <-deadline:
			conn.Close()
			return nil, fmt.Errorf("containerd not answering on %s after a minute", sock)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// importImage loads an image archive into the node's containerd, in the
// namespace the CRI (and so the kubelet) uses.
func importImage(info nodeInfo, archive string) error {
	out, err := exec.Command("ctr", "--address", info.ContainerdAddress, "--namespace", info.ContainerdNS,
		"images", "import", "--no-unpack=false", archive).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %v: %s", archive, err, strings.TrimSpace(string(out)))
	}
	return nil
}

func kubeconfigPort(kubeconfig string) (int, error) {
	b, err := os.ReadFile(kubeconfig)
	if err != nil {
		return 0, err
	}
	m := regexp.MustCompile(`server: https://127\.0\.0\.1:(\d+)`).FindSubmatch(b)
	if m == nil {
		return 0, errors.New("kubeconfig server is not https://127.0.0.1:<port>")
	}
	return strconv.Atoi(string(m[1]))
}

// forwardAPIOn listens on addr:port in the namespace and forwards to the
// host's 127.0.0.1:port.
func forwardAPIOn(ns, addr string, port int) error {
	var l net.Listener
	if err := inNetns(ns, func() (err error) {
		l, err = net.Listen("tcp", net.JoinHostPort(addr, strconv.Itoa(port)))
		return err
	}); err != nil {
		return err
	}
	go serveForward(l, port)
	return nil
}

func waitNodeReady(ctx context.Context, kubeconfig string, info nodeInfo, exited <-chan error) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	deadline := time.After(3 * time.Minute)
	for {
		n, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if err == nil && nodeSchedulable(n) {
			return nil
		}
		select {
		case err := <-exited:
			return err
		case <-ctx.Done():
			return errors.New("interrupted before ready")
		case <-deadline:
			return fmt.Errorf("node %s not Ready after 3 minutes (logs: %s, %s)", nodeName, info.KubeletLog, info.ContainerdLog)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// kubernetesEndpoints points the "kubernetes" Service at the API server's
// forwarder on the node address, so pods' in-cluster configuration
// (KUBERNETES_SERVICE_HOST=198.19.0.1) reaches it through kube-proxy. The
// API server runs with --endpoint-reconciler-type=none (it listens on
// loopback only), so this slice is the Service's only one.
func kubernetesEndpoints(ctx context.Context, kubeconfig, addr string, port int) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	name, proto, p := "https", corev1.ProtocolTCP, int32(port)
	ready := true
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{Name: "kubernetes", Namespace: "default", Labels: map[string]string{
			discoveryv1.LabelServiceName: "kubernetes",
			discoveryv1.LabelManagedBy:   "roster-sandbox",
		}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{addr}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}}},
		Ports:       []discoveryv1.EndpointPort{{Name: &name, Protocol: &proto, Port: &p}},
	}
	api := cs.DiscoveryV1().EndpointSlices("default")
	old, err := api.Get(ctx, "kubernetes", metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = api.Create(ctx, slice, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	slice.ResourceVersion = old.ResourceVersion
	_, err = api.Update(ctx, slice, metav1.UpdateOptions{})
	return err
}

// nodeSchedulable: the kubelet reports the node Ready (the data plane's own
// Ready, reason RosterDataPlane, does not count) and the node lifecycle
// controller has lifted the kubelet's initial not-ready taint, so a pod
// created now gets scheduled at once.
func nodeSchedulable(n *corev1.Node) bool {
	for _, t := range n.Spec.Taints {
		if t.Key == corev1.TaintNodeNotReady || t.Key == corev1.TaintNodeUnreachable {
			return false
		}
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue && c.Reason == "KubeletReady" {
			return true
		}
	}
	return false
}

// stopNode stops the kubelet first (so it restarts nothing), then removes
// every pod sandbox through the CRI (containerd stops the containers and
// runs CNI DEL), then containerd; removeCgroups kills what is left.
func stopNode(info nodeInfo, kubeletProc, runtimeProc *child) {
	kubeletProc.stop(5 * time.Second)
	if conn, err := grpc.NewClient("unix://"+info.ContainerdAddress, grpc.WithTransportCredentials(insecure.NewCredentials())); err == nil {
		rt := runtimeapi.NewRuntimeServiceClient(conn)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		if list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, s := range list.Items {
				_, _ = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: s.Id})
				_, _ = rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: s.Id})
			}
		}
		cancel()
		conn.Close()
	}
	runtimeProc.stop(10 * time.Second)
}

// child is a started process whose exit is reported on a channel.
type child struct {
	cmd  *exec.Cmd
	done chan struct{}
}

func startChild(cmd *exec.Cmd, log string, exited chan<- error) (*child, error) {
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		close(c.done)
		exited <- fmt.Errorf("%s exited: %v (log: %s)", filepath.Base(cmd.Args[len(cmd.Args)-1]), err, log)
	}()
	return c, nil
}

// stop sends SIGTERM and waits, then SIGKILL.
func (c *child) stop(grace time.Duration) {
	if c == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(grace):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}
