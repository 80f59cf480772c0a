//go:build linux

package main

// The data plane: a node network namespace where kube-proxy (nftables mode)
// and CoreDNS run for a Node object of the sandbox, and a fabric namespace
// whose bridge joins the node, the project's test hosts and the host.
//
//	root netns: rst<pid>h 198.18.B.1/22  fd52:5354:0:B::1/64  (the only host change)
//	   │ veth
//	rst-<pid>-fab: br0 ── node ─┐ ── t<pid>x<n> (test hosts, created by src/dev/testhosts.ts)
//	                            │ veth
//	rst-<pid>-node: eth0 198.18.B.2/22, routes only to connected subnets and
//	   the Service ranges; kube-proxy's nftables tables; CoreDNS on :53.
//
// The run id is this process's pid; a later run reaps the namespaces, links
// and /etc/netns directories of runs whose pid is gone.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/util/retry"
)

const nodeName = "roster-node"

// dataPlaneInfo is written to <dir>/dataplane.json for the TypeScript side.
type dataPlaneInfo struct {
	RunID        string   `json:"runId"`
	Pid          int      `json:"pid"`
	Fabric       string   `json:"fabric"`
	Bridge       string   `json:"bridge"`
	Node         string   `json:"node"`
	NodeName     string   `json:"nodeName"`
	Zone         string   `json:"zone"`
	Block        int      `json:"block"`
	Subnet4      string   `json:"subnet4"`
	Subnet6      string   `json:"subnet6"`
	Host4        string   `json:"host4"`
	Host6        string   `json:"host6"`
	Node4        string   `json:"node4"`
	Node6        string   `json:"node6"`
	DNS          string   `json:"dns"`
	ServiceCIDRs []string `json:"serviceCIDRs"`
	Kubeconfig   string   `json:"kubeconfig"`
}

func runDataPlane(args []string) error {
	fs := flag.NewFlagSet("dataplane", flag.ExitOnError)
	var (
		kubeconfig = fs.String("kubeconfig", "", "admin kubeconfig of the sandbox (server on 127.0.0.1)")
		dir        = fs.String("dir", "", "directory for dataplane.json, the Corefile and logs")
		zone       = fs.String("zone", "zone-a", "topology.kubernetes.io/zone label of the node")
		coredns    = fs.String("coredns", "", "CoreDNS binary (default: roster-coredns next to this binary)")
		withParent = fs.Bool("exit-with-parent", false, "shut down when the parent process dies")
	)
	_ = fs.Parse(args)
	if *kubeconfig == "" || *dir == "" {
		return errors.New("--kubeconfig and --dir are required")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if *coredns == "" {
		*coredns = filepath.Join(filepath.Dir(self), "roster-coredns")
	}
	if _, err := os.Stat(*coredns); err != nil {
		return fmt.Errorf("CoreDNS binary: %w (build it with `make coredns`)", err)
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		return err
	}
	kcBytes, err := os.ReadFile(*kubeconfig)
	if err != nil {
		return err
	}
	m := regexp.MustCompile(`server: https://127\.0\.0\.1:(\d+)`).FindSubmatch(kcBytes)
	if m == nil {
		return errors.New("kubeconfig server is not https://127.0.0.1:<port>")
	}
	apiPort, _ := strconv.Atoi(string(m[1]))

	started := time.Now()
	reapStale()
	pid := os.Getpid()
	info := dataPlaneInfo{
		RunID: fmt.Sprintf("rst-%d", pid), Pid: pid, Bridge: "br0",
		Fabric: fmt.Sprintf("rst-%d-fab", pid), Node: fmt.Sprintf("rst-%d-node", pid),
		NodeName: nodeName, Zone: *zone, ServiceCIDRs: []string{serviceCIDR4, serviceCIDR6},
		Kubeconfig: *kubeconfig,
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *withParent {
		go watchParent()
	}
	defer teardown(info)
	if err := buildTopology(&info); err != nil {
		return fmt.Errorf("network: %w", err)
	}
	if err := forwardAPI(info.Node, apiPort); err != nil {
		return fmt.Errorf("API forwarder: %w", err)
	}
	if err := ensureNode(ctx, *kubeconfig, info); err != nil {
		return fmt.Errorf("node object: %w", err)
	}

	// CoreDNS: cluster.local only, on the node's addresses (reachable from the
	// node namespace as its resolver, and from the host and test hosts).
	corefile := filepath.Join(*dir, "Corefile")
	if err := os.WriteFile(corefile, []byte(fmt.Sprintf(`cluster.local:53 {
    bind %s %s
    ready %s:8181
    errors
    kubernetes cluster.local {
        kubeconfig %s
    }
}
`, info.Node4, info.Node6, info.Node4, *kubeconfig)), 0o600); err != nil {
		return err
	}
	etcNetns := filepath.Join("/etc/netns", info.Node)
	if err := os.MkdirAll(etcNetns, 0o755); err != nil {
		return err
	}
	// `ip netns exec` bind-mounts this over /etc/resolv.conf.
	resolv := fmt.Sprintf("nameserver %s\nsearch default.svc.cluster.local svc.cluster.local cluster.local\noptions ndots:5 timeout:1 attempts:2\n", info.Node4)
	if err := os.WriteFile(filepath.Join(etcNetns, "resolv.conf"), []byte(resolv), 0o644); err != nil {
		return err
	}
	// Names of the node namespace resolve only through CoreDNS.
	if err := os.WriteFile(filepath.Join(etcNetns, "hosts"), []byte("127.0.0.1 localhost\n::1 localhost\n"), 0o644); err != nil {
		return err
	}

	logf, err := os.OpenFile(filepath.Join(*dir, "dataplane.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	dns := inNode(info.Node, logf, *coredns, "-conf", corefile)
	proxy := inNode(info.Node, logf, self, "kube-proxy",
		"--kubeconfig="+*kubeconfig,
		"--hostname-override="+nodeName,
		"--proxy-mode=nftables",
		"--bind-address="+info.Node4,
		"--healthz-bind-address="+info.Node4+":10256",
		"--metrics-bind-address=127.0.0.1:10249",
		// Leave every global conntrack sysctl alone.
		"--conntrack-max-per-core=0",
		"--conntrack-tcp-timeout-established=0",
		"--conntrack-tcp-timeout-close-wait=0",
		"--conntrack-udp-timeout=0",
		"--conntrack-udp-timeout-stream=0",
	)
	children := []*exec.Cmd{dns, proxy}
	for _, c := range children {
		if err := c.Start(); err != nil {
			return err
		}
	}
	defer func() {
		for _, c := range children {
			_ = c.Process.Signal(syscall.SIGTERM)
		}
		for _, c := range children {
			waitOrKill(c, 3*time.Second)
		}
	}()
	exited := make(chan error, len(children))
	for _, c := range children {
		go func() { exited <- fmt.Errorf("%s exited: %v", filepath.Base(c.Path), c.Wait()) }()
	}

	if err := waitHTTP(ctx, exited, "http://"+info.Node4+":10256/healthz", "http://"+info.Node4+":8181/ready"); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	infoPath := filepath.Join(*dir, "dataplane.json")
	if err := os.WriteFile(infoPath, b, 0o600); err != nil {
		return err
	}
	fmt.Printf("roster-dataplane ready in %.1fs: info=%s node=%s dns=%s\n", time.Since(started).Seconds(), infoPath, info.Node, info.DNS)
	select {
	case <-ctx.Done():
		return nil
	case err := <-exited:
		return err
	}
}

func ipCmd(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// buildTopology picks a free /22 of 198.18.0.0/17 (under a host-wide lock,
// so concurrent runs never share one) and wires the namespaces. The upper
// half, 198.18.128.0/17, holds the pods of a node (node.go): block b's pods
// get 198.18.(128+4b).0/22.
func buildTopology(info *dataPlaneInfo) error {
	lock, err := os.OpenFile("/run/roster-dataplane.lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return err
	}
	out, err := exec.Command("ip", "-o", "-4", "addr", "show").Output()
	if err != nil {
		return err
	}
	used := map[int]bool{}
	for _, m := range regexp.MustCompile(`inet 198\.18\.(\d+)\.`).FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.Atoi(m[1])
		used[n/4] = true
	}
	block := -1
	for b := 0; b < 32; b++ {
		if !used[b] {
			block = b
			break
		}
	}
	if block < 0 {
		return errors.New("no free /22 in 198.18.0.0/17")
	}
	info.Block = block
	info.Subnet4 = fmt.Sprintf("198.18.%d.0/22", block*4)
	info.Host4 = fmt.Sprintf("198.18.%d.1", block*4)
	info.Node4 = fmt.Sprintf("198.18.%d.2", block*4)
	info.Subnet6 = fmt.Sprintf("fd52:5354:0:%x::/64", block)
	info.Host6 = fmt.Sprintf("fd52:5354:0:%x::1", block)
	info.Node6 = fmt.Sprintf("fd52:5354:0:%x::2", block)
	info.DNS = info.Node4
	hostLink := fmt.Sprintf("rst%dh", info.Pid)
	steps := [][]string{
		{"netns", "add", info.Fabric},
		{"netns", "add", info.Node},
		{"-n", info.Fabric, "link", "set", "lo", "up"},
		{"-n", info.Node, "link", "set", "lo", "up"},
		{"-n", info.Fabric, "link", "add", "br0", "type", "bridge"},
		{"-n", info.Fabric, "link", "set", "br0", "up"},
		{"link", "add", hostLink, "type", "veth", "peer", "name", "host", "netns", info.Fabric},
		{"-n", info.Fabric, "link", "set", "host", "master", "br0", "up"},
		{"addr", "add", info.Host4 + "/22", "dev", hostLink},
		{"addr", "add", info.Host6 + "/64", "dev", hostLink, "nodad"},
		{"link", "set", hostLink, "up"},
		{"-n", info.Fabric, "link", "add", "node", "type", "veth", "peer", "name", "eth0", "netns", info.Node},
		{"-n", info.Fabric, "link", "set", "node", "master", "br0", "up"},
		{"-n", info.Node, "addr", "add", info.Node4 + "/22", "dev", "eth0"},
		{"-n", info.Node, "addr", "add", info.Node6 + "/64", "dev", "eth0", "nodad"},
		{"-n", info.Node, "link", "set", "eth0", "up"},
		// No default route: only the Service ranges, so a ClusterIP nobody
		// programmed leads nowhere and kube-proxy's DNAT decides everything.
		{"-n", info.Node, "route", "add", serviceCIDR4, "dev", "eth0"},
		{"-n", info.Node, "-6", "route", "add", serviceCIDR6, "dev", "eth0"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return nil
}

// teardown removes what this run created; deleting the fabric namespace
// deletes the host's veth with it.
func teardown(info dataPlaneInfo) {
	_ = ipCmd("netns", "del", info.Node)
	_ = ipCmd("netns", "del", info.Fabric)
	_ = os.RemoveAll(filepath.Join("/etc/netns", info.Node))
}

var runName = regexp.MustCompile(`^rst-?(\d+)`)

// alive: the process exists and is not a zombie (a run whose parent has
// not reaped it yet is as dead as one that is gone).
func alive(pid int) bool {
	if pid <= 0 || (unix.Kill(pid, 0) != nil && unix.Kill(pid, 0) != unix.EPERM) {
		return false
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// "pid (comm) S ...": the state follows the last ')'.
	rest := string(stat[strings.LastIndexByte(string(stat), ')')+1:])
	return !strings.HasPrefix(strings.TrimSpace(rest), "Z")
}

// reapStale deletes namespaces, root links and /etc/netns entries of runs
// (data planes or test-host owners) whose process is gone.
func reapStale() {
	dead := func(name string) bool {
		m := runName.FindStringSubmatch(name)
		if m == nil {
			return false
		}
		pid, _ := strconv.Atoi(m[1])
		return !alive(pid)
	}
	if out, err := exec.Command("ip", "netns", "list").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && dead(f[0]) {
				_ = ipCmd("netns", "del", f[0])
			}
		}
	}
	if out, err := exec.Command("ip", "-o", "link", "show").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if m := regexp.MustCompile(`^\d+: (rst\d+h)[@:]`).FindStringSubmatch(line); m != nil && dead(m[1]) {
				_ = ipCmd("link", "del", m[1])
			}
		}
	}
	if entries, err := os.ReadDir("/etc/netns"); err == nil {
		for _, e := range entries {
			if dead(e.Name()) {
				_ = os.RemoveAll(filepath.Join("/etc/netns", e.Name()))
			}
		}
	}
}

// inNetns runs fn on an OS thread switched into the named namespace.
// Sockets opened there stay in that namespace after the thread switches back.
func inNetns(name string, fn func() error) error {
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	target, err := os.Open(filepath.Join("/var/run/netns", name))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return err
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: Go retires it when this goroutine ends.
		return fmt.Errorf("returning to the host namespace: %w", err)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// forwardAPI listens on 127.0.0.1:<port> inside the node namespace and
// forwards to the API server on the host's 127.0.0.1:<port>: kube-proxy and
// CoreDNS use the sandbox kubeconfig unchanged, and TLS still verifies.
func forwardAPI(ns string, port int) error {
	var l net.Listener
	if err := inNetns(ns, func() (err error) {
		l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		return err
	}); err != nil {
		return err
	}
	go serveForward(l, port)
	return nil
}

// serveForward copies each connection of l to the host's 127.0.0.1:port.
func serveForward(l net.Listener, port int) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			up, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 5*time.Second)
			if err != nil {
				return
			}
			defer up.Close()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
			<-done
		}()
	}
}

// ensureNode creates (or refreshes) the Node kube-proxy runs for, labelled
// with its zone and carrying the node namespace's addresses.
func ensureNode(ctx context.Context, kubeconfig string, info dataPlaneInfo) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	labels := map[string]string{
		"kubernetes.io/hostname":      nodeName,
		"kubernetes.io/os":            "linux",
		"topology.kubernetes.io/zone": info.Zone,
	}
	// Retried on conflict: with --node the kubelet and the node lifecycle
	// controller write this Node too.
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := cs.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			node, err = cs.CoreV1().Nodes().Create(ctx, &corev1.Node{
				ObjectMeta: metav1.ObjectMeta{Name: nodeName, Labels: labels},
			}, metav1.CreateOptions{})
		} else if err == nil {
			for k, v := range labels {
				if node.Labels == nil {
					node.Labels = map[string]string{}
				}
				node.Labels[k] = v
			}
			node, err = cs.CoreV1().Nodes().Update(ctx, node, metav1.UpdateOptions{})
		}
		if err != nil {
			return err
		}
		if hasKubelet(node) {
			// A kubelet owns the status (addresses, conditions): leave it.
			return nil
		}
		now := metav1.Now()
		node.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: info.Node4},
			{Type: corev1.NodeInternalIP, Address: info.Node6},
			{Type: corev1.NodeHostName, Address: nodeName},
		}
		node.Status.Conditions = []corev1.NodeCondition{{
			Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "RosterDataPlane",
			Message: "kube-proxy and CoreDNS run in " + info.Node, LastHeartbeatTime: now, LastTransitionTime: now,
		}}
		_, err = cs.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
}

// hasKubelet: a kubelet registered this Node (it reports its version).
func hasKubelet(node *corev1.Node) bool { return node.Status.NodeInfo.KubeletVersion != "" }

func inNode(ns string, log io.Writer, bin string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	cmd.Stdout = log
	cmd.Stderr = log
	dieWithParent(cmd)
	return cmd
}

func waitHTTP(ctx context.Context, exited <-chan error, urls ...string) error {
	client := &http.Client{Timeout: time.Second}
	deadline := time.After(2 * time.Minute)
	for _, u := range urls {
		for {
			resp, err := client.Get(u)
			if err == nil {
				_, _ = io.Copy(io.Discard, bufio.NewReader(resp.Body))
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
			}
			select {
			case err := <-exited:
				return err
			case <-ctx.Done():
				return errors.New("interrupted before ready")
			case <-deadline:
				return fmt.Errorf("%s not ready after 2 minutes", u)
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}
