// Command clientgo-candidate is a client-go leader election candidate for the interop tests:
// it campaigns for a Lease with k8s.io/client-go's tools/leaderelection (LeaseLock,
// ReleaseOnCancel) exactly as Kubernetes components do, and prints one line per event.
//
//	clientgo-candidate --kubeconfig K --namespace NS --name NAME --identity ID \
//	    --lease-duration 4s --renew-deadline 3s --retry-period 1s
//
// Each stdout line is `<monotonic seconds> <event> <JSON string>`, where the time is
// CLOCK_MONOTONIC (the clock of Python's time.monotonic() on Linux) read when the event
// happened. Events:
//
//	ready "<identity>"            the client is built; campaigning starts
//	started-leading "<identity>"  OnStartedLeading began: the leader's work starts
//	stopped-leading "<identity>"  the work's context was cancelled: the work must stop now
//	new-leader "<holder>"         OnNewLeader (client-go calls it asynchronously)
//	on-stopped-leading "<id>"     OnStoppedLeading (client-go calls it even if it never led)
//	exit "<reason>"               Run returned; the process exits with status 0
//	error "<message>"             a fatal setup error; the process exits with status 2
//
// With --elections N (for the benchmarks) it runs N electors in this one process, through
// one client (one HTTP/2 connection), each for a Lease of its own named <name>-<i>; then
// started-leading and stopped-leading carry the Lease's name instead of the identity.
//
// SIGTERM and SIGINT cancel Run's context, so client-go releases the Lease
// (holderIdentity "", leaseDurationSeconds 1) before Run returns.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
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

func main() {
	var (
		kubeconfig, namespace, name, identity string
		lease                                 = 15 * time.Second
		renew                                 = 10 * time.Second
		retry                                 = 2 * time.Second
		elections                             int
	)
	klog.InitFlags(nil) // -v=4 and friends, for debugging a test
	flag.StringVar(&kubeconfig, "kubeconfig", "", "kubeconfig file (required)")
	flag.StringVar(&namespace, "namespace", "default", "namespace of the Lease")
	flag.StringVar(&name, "name", "", "name of the Lease (required)")
	flag.StringVar(&identity, "identity", "", "this candidate's identity (required)")
	flag.Var(duration{&lease}, "lease-duration", "LeaseDuration (Go duration or seconds)")
	flag.Var(duration{&renew}, "renew-deadline", "RenewDeadline (Go duration or seconds)")
	flag.Var(duration{&retry}, "retry-period", "RetryPeriod (Go duration or seconds)")
	flag.IntVar(&elections, "elections", 0, "run this many electors, for Leases <name>-0 ... (benchmarks)")
	flag.Parse()
	if kubeconfig == "" || name == "" || identity == "" {
		fail("--kubeconfig, --name and --identity are required")
	}

	config, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		fail("kubeconfig %s: %v", kubeconfig, err)
	}
	// What resourcelock.NewFromKubeconfig (used by kube-controller-manager and
	// kube-scheduler) does: a request timeout of max(1s, renewDeadline/2).
	config.Timeout = max(time.Second, renew/2)
	config.UserAgent = "clientgo-candidate"
	if elections > 0 {
		// many electors share this client: no client-side rate limit (5 QPS by default)
		config.QPS = -1
	}
	client, err := coordinationv1.NewForConfig(config)
	if err != nil {
		fail("client: %v", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if elections > 0 {
		runMany(ctx, client, namespace, name, identity, elections, lease, renew, retry)
		return
	}

	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: name},
		Client:     client,
		LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
	}

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

// runMany runs `count` electors through one client, each for the Lease <name>-<i>, until
// the context is cancelled.
func runMany(ctx context.Context, client coordinationv1.CoordinationV1Interface,
	namespace, name, identity string, count int, lease, renew, retry time.Duration) {
	electors := make([]*leaderelection.LeaderElector, 0, count)
	for i := 0; i < count; i++ {
		lockName := fmt.Sprintf("%s-%d", name, i)
		elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
			Lock: &resourcelock.LeaseLock{
				LeaseMeta:  metav1.ObjectMeta{Namespace: namespace, Name: lockName},
				Client:     client,
				LockConfig: resourcelock.ResourceLockConfig{Identity: identity},
			},
			LeaseDuration:   lease,
			RenewDeadline:   renew,
			RetryPeriod:     retry,
			ReleaseOnCancel: true,
			Name:            lockName,
			Callbacks: leaderelection.LeaderCallbacks{
				OnStartedLeading: func(work context.Context) {
					emit("started-leading", lockName)
					<-work.Done()
					emit("stopped-leading", lockName)
				},
				OnStoppedLeading: func() {},
			},
		})
		if err != nil {
			fail("%v", err)
		}
		electors = append(electors, elector)
	}
	emit("ready", identity)
	var running sync.WaitGroup
	for _, elector := range electors {
		running.Add(1)
		go func() { defer running.Done(); elector.Run(ctx) }()
	}
	running.Wait()
	emit("exit", "signal")
}
