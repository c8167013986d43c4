// Command clientgo-old-candidate is a leader election candidate built from an old client-go,
// for the interop tests of the locks that client-go has since removed: the
// `control-plane.alpha.kubernetes.io/leader` annotation of an Endpoints object (`endpoints`,
// in client-go up to v0.23) and the MultiLock that writes that annotation and a Lease
// (`endpointsleases`, up to v0.27). It campaigns with tools/leaderelection and
// `resourcelock.New`, as the Kubernetes components of those releases did, with
// ReleaseOnCancel, and prints one line per event.
//
//	clientgo-old-candidate --kubeconfig K --namespace NS --name NAME --identity ID \
//	    --lock endpoints --lease-duration 4s --renew-deadline 3s --retry-period 1s
//
// One source, two builds: go.mod pins client-go v0.27.16 (endpointsleases, leases), and
// go.v023.mod pins v0.23.17 (endpoints, endpointsleases, leases), built with
// `go build -modfile=go.v023.mod`. `resourcelock.New` refuses a lock type its release no
// longer has ("endpoints lock is removed, migrate to endpointsleases"): the candidate then
// prints an `error` line and exits with status 2.
//
// Each stdout line is `<monotonic seconds> <event> <JSON string>`, the time being
// CLOCK_MONOTONIC (the clock of Python's time.monotonic() on Linux) read when the event
// happened. The events are those of tests/peers/clientgo:
//
//	ready "<identity>"            the lock is built; campaigning starts
//	started-leading "<identity>"  OnStartedLeading began: the leader's work starts
//	stopped-leading "<identity>"  the work's context was cancelled: the work must stop now
//	new-leader "<holder>"         OnNewLeader (client-go calls it asynchronously)
//	on-stopped-leading "<id>"     OnStoppedLeading (client-go calls it even if it never led)
//	exit "<reason>"               Run returned; the process exits with status 0
//	error "<message>"             a fatal setup error; the process exits with status 2
//
// SIGTERM and SIGINT cancel Run's context, so client-go releases the lock (holderIdentity
// "", leaseDurationSeconds 1) before Run returns. stderr starts with the client-go version
// the binary was built from.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	corev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
	"k8s.io/klog/v2"
)

var stdout sync.Mutex

// monotonic is CLOCK_MONOTONIC in seconds, the same clock as Python's time.monotonic().
func monotonic() string {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err)
	}
	return fmt.Sprintf("%d.%09d", ts.Sec, ts.Nsec)
}

// emit prints one event line; the time is read under the lock, so lines are in time order.
func emit(event, arg string) {
	quoted, _ := json.Marshal(arg)
	stdout.Lock()
	defer stdout.Unlock()
	fmt.Fprintf(os.Stdout, "%s %s %s\n", monotonic(), event, quoted)
}

// duration reads a Go duration ("4s", "1500ms") or a number of seconds ("4", "1.5").
type duration struct{ d *time.Duration }

func (v duration) String() string {
	if v.d == nil {
		return ""
	}
	return v.d.String()
}

func (v duration) Set(text string) error {
	if d, err := time.ParseDuration(text); err == nil {
		*v.d = d
		return nil
	}
	seconds, err := strconv.ParseFloat(text, 64)
	if err != nil {
		return fmt.Errorf("%q is neither a Go duration (4s, 1500ms) nor a number of seconds", text)
	}
	*v.d = time.Duration(seconds * float64(time.Second))
	return nil
}

func fail(format string, args ...any) {
	emit("error", fmt.Sprintf(format, args...))
	os.Exit(2)
}

// clientgoVersion is the version of k8s.io/client-go this binary was built with.
func clientgoVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range info.Deps {
			if dep.Path == "k8s.io/client-go" {
				return dep.Version
			}
		}
	}
	return "unknown"
}

func main() {
	var (
		kubeconfig, namespace, name, identity string
		lockType                              = "endpoints"
		lease                                 = 15 * time.Second
		renew                                 = 10 * time.Second
		retry                                 = 2 * time.Second
		version                               bool
	)
	klog.InitFlags(nil) // -v=4 and friends, for debugging a test
	flag.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (required)")
	flag.StringVar(&namespace, "namespace", "default", "namespace of the lock")
	flag.StringVar(&name, "name", "", "name of the lock (required)")
	flag.StringVar(&identity, "identity", "", "this candidate's identity (required)")
	flag.StringVar(&lockType, "lock", lockType, "resourcelock type: endpoints, endpointsleases or leases")
	flag.Var(duration{&lease}, "lease-duration", "LeaseDuration (Go duration or seconds)")
	flag.Var(duration{&renew}, "renew-deadline", "RenewDeadline (Go duration or seconds)")
	flag.Var(duration{&retry}, "retry-period", "RetryPeriod (Go duration or seconds)")
	flag.BoolVar(&version, "version", false, "print the client-go version and exit")
	flag.Parse()
	if version {
		fmt.Println(clientgoVersion())
		return
	}
	if kubeconfig == "" || name == "" || identity == "" {
		fail("--kubeconfig, --name and --identity are required")
	}
	fmt.Fprintf(os.Stderr, "client-go %s, lock %s/%s/%s\n", clientgoVersion(), lockType, namespace, name)

	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fail("kubeconfig %s: %v", kubeconfig, err)
	}
	// What resourcelock.NewFromKubeconfig (used by kube-controller-manager and
	// kube-scheduler) does: a request timeout of max(1s, renewDeadline/2).
	config.Timeout = renew / 2
	if config.Timeout < time.Second {
		config.Timeout = time.Second
	}
	config.UserAgent = "clientgo-old-candidate"
	core, err := corev1.NewForConfig(config)
	if err != nil {
		fail("client: %v", err)
	}
	coordination, err := coordinationv1.NewForConfig(config)
	if err != nil {
		fail("client: %v", err)
	}
	lock, err := resourcelock.New(lockType, namespace, name, core, coordination,
		resourcelock.ResourceLockConfig{Identity: identity})
	if err != nil {
		fail("lock %s: %v", lockType, err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	var working sync.WaitGroup
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   lease,
		RenewDeadline:   renew,
		RetryPeriod:     retry,
		ReleaseOnCancel: true,
		Name:            name,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(work context.Context) {
				working.Add(1)
				defer working.Done()
				emit("started-leading", identity)
				<-work.Done() // the leader's work runs until this context is cancelled
				emit("stopped-leading", identity)
			},
			OnStoppedLeading: func() { emit("on-stopped-leading", identity) },
			OnNewLeader:      func(holder string) { emit("new-leader", holder) },
		},
	})
	if err != nil {
		fail("%v", err)
	}
	emit("ready", identity)
	elector.Run(ctx)
	// OnStartedLeading runs in a goroutine of its own: let it print its last line
	finished := make(chan struct{})
	go func() { working.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(5 * time.Second):
	}
	reason := "lost"
	if ctx.Err() != nil {
		reason = "signal"
	}
	emit("exit", reason)
}
