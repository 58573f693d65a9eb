// fakekubelet plays the kubelet's side of the device plugin API v1beta1 for
// tests/integration/k8s_plugin.sh. It is not gpumem's code: grpc-go from
// Debian and Go code that protoc generates from the message definitions of
// src/k8s/deviceplugin.proto (checked against our facts table of upstream's
// by tests/integration/k8s_proto.sh), none of gpumem's C code. Built by tests/k8s/build-fakekubelet.sh
// offline (GO111MODULE=off, GOPATH=/usr/share/gocode).
//
//	fakekubelet serve -dir D [-clean]    serve Registration on D/kubelet.sock until SIGTERM
//	fakekubelet options -sock S
//	fakekubelet preferred -sock S -available a,b,c -must a -size N
//	fakekubelet allocate -sock S -ids "a,b;c" [-checkpoint F -pod UID]
//	fakekubelet forget -checkpoint F -pod UID
//	fakekubelet raw -sock S -method /v1beta1.DevicePlugin/Allocate -hex 0aff
//	fakekubelet watch -sock S -n K       the first K ListAndWatch responses
//
// serve logs one JSON object per line on stdout: "register" (the request,
// after checking it as the kubelet does), "options" (what the plugin said
// when called back before Register is answered), "list" (each ListAndWatch
// response: counts of healthy and unhealthy IDs, the message size, the
// unhealthy IDs' GPUs), "stream_end". Client commands print the response as
// JSON, or {"error": {"code": ..., "message": ...}} and exit 3.
package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io/ioutil"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/golang/protobuf/proto"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	pb "k8s.io/kubelet/pkg/apis/deviceplugin/v1beta1"
)

var out = json.NewEncoder(os.Stdout)
var outMu sync.Mutex

// emit writes one JSON line; maps get "us", the time in microseconds
// (monotonic since start), for bench/k8s.sh.
var t0 = time.Now()

func emit(v interface{}) {
	if m, ok := v.(map[string]interface{}); ok {
		m["us"] = time.Since(t0).Microseconds()
	}
	outMu.Lock()
	defer outMu.Unlock()
	out.Encode(v)
}

func dial(sock string) (*grpc.ClientConn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return grpc.DialContext(ctx, sock, grpc.WithInsecure(), grpc.WithBlock(),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(16<<20)),
		grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", addr)
		}))
}

func fail(err error) {
	st, _ := status.FromError(err)
	emit(map[string]interface{}{"error": map[string]string{"code": st.Code().String(), "message": st.Message()}})
	os.Exit(3)
}

// ---- serve ----------------------------------------------------------------

type registration struct {
	dir string
}

func (r *registration) Register(ctx context.Context, req *pb.RegisterRequest) (*pb.Empty, error) {
	ev := map[string]interface{}{"event": "register", "version": req.Version, "endpoint": req.Endpoint,
		"resource": req.ResourceName, "preferred": req.Options != nil && req.Options.GetPreferredAllocationAvailable}
	// What the kubelet checks (pkg/kubelet/cm/devicemanager): the version
	// it supports, an extended resource name, an endpoint in its directory.
	if req.Version != "v1beta1" {
		return nil, status.Errorf(codes.InvalidArgument, "version %q not supported", req.Version)
	}
	parts := strings.Split(req.ResourceName, "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" || strings.HasPrefix(parts[0], "kubernetes.io") {
		return nil, status.Errorf(codes.InvalidArgument, "invalid resource name %q", req.ResourceName)
	}
	if strings.Contains(req.Endpoint, "/") {
		return nil, status.Errorf(codes.InvalidArgument, "endpoint %q is not a file name", req.Endpoint)
	}
	sock := filepath.Join(r.dir, req.Endpoint)
	if fi, err := os.Stat(sock); err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil, status.Errorf(codes.InvalidArgument, "endpoint %q is not a socket", sock)
	}
	emit(ev)
	// Call back before answering: the plugin must be serving already.
	conn, err := dial(sock)
	if err != nil {
		return nil, status.Errorf(codes.Unavailable, "cannot reach %s: %v", sock, err)
	}
	c := pb.NewDevicePluginClient(conn)
	opts, err := c.GetDevicePluginOptions(ctx, &pb.Empty{})
	if err != nil {
		conn.Close()
		return nil, err
	}
	emit(map[string]interface{}{"event": "options", "resource": req.ResourceName,
		"preferred": opts.GetPreferredAllocationAvailable, "prestart": opts.PreStartRequired})
	go watch(conn, c, req.ResourceName)
	return &pb.Empty{}, nil
}

func summarize(resource string, r *pb.ListAndWatchResponse) map[string]interface{} {
	healthy, unhealthy := 0, 0
	bad := map[string]bool{}
	for _, d := range r.Devices {
		if d.Health == "Healthy" {
			healthy++
		} else {
			unhealthy++
			id := d.ID
			if i := strings.LastIndex(id, "-m"); i > 0 {
				id = id[:i]
			}
			bad[id] = true
		}
	}
	gpus := []string{}
	for g := range bad {
		gpus = append(gpus, g)
	}
	sort.Strings(gpus)
	return map[string]interface{}{"event": "list", "resource": resource, "healthy": healthy,
		"unhealthy": unhealthy, "unhealthy_gpus": gpus, "bytes": proto.Size(r)}
}

func watch(conn *grpc.ClientConn, c pb.DevicePluginClient, resource string) {
	defer conn.Close()
	s, err := c.ListAndWatch(context.Background(), &pb.Empty{})
	if err != nil {
		emit(map[string]interface{}{"event": "stream_end", "resource": resource, "error": err.Error()})
		return
	}
	for {
		r, err := s.Recv()
		if err != nil {
			emit(map[string]interface{}{"event": "stream_end", "resource": resource, "error": err.Error()})
			return
		}
		emit(summarize(resource, r))
	}
}

func serve(args []string) {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	dir := fs.String("dir", "", "the device plugin directory")
	clean := fs.Bool("clean", false, "remove every file in dir but the checkpoint first, as a starting kubelet does")
	fs.Parse(args)
	if *clean {
		names, _ := ioutil.ReadDir(*dir)
		for _, n := range names {
			if n.Name() != "kubelet_internal_checkpoint" {
				os.Remove(filepath.Join(*dir, n.Name()))
			}
		}
	}
	sock := filepath.Join(*dir, "kubelet.sock")
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	srv := grpc.NewServer()
	pb.RegisterRegistrationServer(srv, &registration{dir: *dir})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-sig; srv.Stop(); os.Remove(sock); os.Exit(0) }()
	emit(map[string]interface{}{"event": "serving", "socket": sock})
	srv.Serve(l)
}

// ---- client commands --------------------------------------------------------

func split(s string) []string {
	if s == "" {
		return []string{}
	}
	return strings.Split(s, ",")
}

// The kubelet's checkpoint, as pkg/kubelet/cm/devicemanager/checkpoint writes it.
type podDevicesEntry struct {
	PodUID        string
	ContainerName string
	ResourceName  string
	DeviceIDs     map[int64][]string
	AllocResp     []byte
}
type checkpointData struct {
	PodDeviceEntries  []podDevicesEntry
	RegisteredDevices map[string][]string
}
type checkpoint struct {
	Data     checkpointData
	Checksum uint64
}

func loadCheckpoint(path string) checkpoint {
	var cp checkpoint
	if b, err := ioutil.ReadFile(path); err == nil {
		json.Unmarshal(b, &cp)
	}
	return cp
}

func saveCheckpoint(path string, cp checkpoint) {
	b, _ := json.Marshal(cp)
	tmp := path + ".tmp"
	ioutil.WriteFile(tmp, b, 0644)
	os.Rename(tmp, path)
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: fakekubelet serve|options|preferred|allocate|forget|raw|watch ...")
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	if cmd == "serve" {
		serve(args)
		return
	}
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	sock := fs.String("sock", "", "the plugin's socket")
	available := fs.String("available", "", "")
	must := fs.String("must", "", "")
	size := fs.Int("size", 0, "")
	ids := fs.String("ids", "", "containers separated by ';', IDs by ','")
	ckpt := fs.String("checkpoint", "", "")
	pod := fs.String("pod", "pod-uid", "")
	resource := fs.String("resource", "gpumem.io/memory", "")
	method := fs.String("method", "", "")
	hexBytes := fs.String("hex", "", "")
	n := fs.Int("n", 1, "")
	fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if cmd == "forget" {
		cp := loadCheckpoint(*ckpt)
		kept := []podDevicesEntry{}
		for _, e := range cp.Data.PodDeviceEntries {
			if e.PodUID != *pod {
				kept = append(kept, e)
			}
		}
		cp.Data.PodDeviceEntries = kept
		saveCheckpoint(*ckpt, cp)
		return
	}
	conn, err := dial(*sock)
	if err != nil {
		fail(status.Errorf(codes.Unavailable, "%v", err))
	}
	defer conn.Close()
	c := pb.NewDevicePluginClient(conn)
	switch cmd {
	case "options":
		r, err := c.GetDevicePluginOptions(ctx, &pb.Empty{})
		if err != nil {
			fail(err)
		}
		emit(r)
	case "preferred":
		r, err := c.GetPreferredAllocation(ctx, &pb.PreferredAllocationRequest{ContainerRequests: []*pb.ContainerPreferredAllocationRequest{
			{AvailableDeviceIDs: split(*available), MustIncludeDeviceIDs: split(*must), AllocationSize: int32(*size)}}})
		if err != nil {
			fail(err)
		}
		emit(r)
	case "allocate":
		req := &pb.AllocateRequest{}
		for _, c := range strings.Split(*ids, ";") {
			req.ContainerRequests = append(req.ContainerRequests, &pb.ContainerAllocateRequest{DevicesIds: split(c)})
		}
		start := time.Now()
		r, err := c.Allocate(ctx, req)
		took := time.Since(start)
		if err != nil {
			fail(err)
		}
		if *ckpt != "" {
			cp := loadCheckpoint(*ckpt)
			for i, cr := range r.ContainerResponses {
				b, _ := proto.Marshal(cr)
				cp.Data.PodDeviceEntries = append(cp.Data.PodDeviceEntries, podDevicesEntry{PodUID: *pod,
					ContainerName: fmt.Sprintf("c%d", i), ResourceName: *resource,
					DeviceIDs: map[int64][]string{-1: req.ContainerRequests[i].DevicesIds}, AllocResp: b})
			}
			saveCheckpoint(*ckpt, cp)
		}
		emit(map[string]interface{}{"response": r, "micros": took.Microseconds()})
	case "raw":
		b, err := hex.DecodeString(*hexBytes)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		var resp rawMsg
		err = conn.Invoke(ctx, *method, rawMsg(b), &resp, grpc.ForceCodec(rawCodec{}))
		if err != nil {
			fail(err)
		}
		emit(map[string]interface{}{"ok": hex.EncodeToString(resp)})
	case "watch":
		start := time.Now()
		s, err := c.ListAndWatch(ctx, &pb.Empty{})
		if err != nil {
			fail(err)
		}
		for i := 0; i < *n; i++ {
			r, err := s.Recv()
			if err != nil {
				fail(err)
			}
			ev := summarize(*resource, r)
			ev["micros"] = time.Since(start).Microseconds()
			emit(ev)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown command", cmd)
		os.Exit(2)
	}
}

// rawCodec sends and receives bytes as they are: malformed requests.
type rawMsg []byte
type rawCodec struct{}

func (rawCodec) Marshal(v interface{}) ([]byte, error) { return []byte(v.(rawMsg)), nil }
func (rawCodec) Unmarshal(data []byte, v interface{}) error {
	*(v.(*rawMsg)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }
