package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
	"google.golang.org/grpc"

	"github.com/ringmaster-ml/ringmaster/pkg/coord"
	"github.com/ringmaster-ml/ringmaster/pkg/localcluster"
	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// TestMain lets the test binary run as the real ringctl inside scripts
// (testscript installs it as `ringctl` on the scripts' PATH).
func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){
		"ringctl": func() {
			ctx, stop := signalContext()
			code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
			stop()
			os.Exit(code)
		},
	})
}

// scriptDeadline bounds every poll in the scripts' commands.
const scriptDeadline = 2 * time.Minute

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// clusterBinaries builds the coordinator and worker once for the scripts
// that start clusters (`ringctl local` finds them through RINGMASTER_BIN_DIR).
func clusterBinaries() (string, error) {
	binOnce.Do(func() {
		binDir = filepath.Join(os.TempDir(), fmt.Sprintf("ringctl-script-bin-%d", os.Getpid()))
		root, err := filepath.Abs("../..")
		if err != nil {
			binErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		binErr = localcluster.Build(ctx, root, binDir)
	})
	return binDir, binErr
}

// TestScripts runs testdata/script/*.txtar: ringctl end to end, as a
// separate process per command.
func TestScripts(t *testing.T) {
	t.Cleanup(func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	})
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			env.Setenv("RINGMASTER_COORDINATORS", "")
			env.Setenv("XDG_RUNTIME_DIR", filepath.Join(env.WorkDir, "run"))
			return nil
		},
		Condition: func(cond string) (bool, error) {
			if cond == "short" {
				return testing.Short(), nil
			}
			return false, fmt.Errorf("unknown condition %q", cond)
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"clusterbins": cmdClusterBins,
			"waitcluster": cmdWaitCluster,
			"waitjob":     cmdWaitJob,
			"pidsgone":    cmdPIDsGone,
			"interrupt":   cmdInterrupt,
		},
	})
}

// clusterbins: build the coordinator and worker; set RINGMASTER_BIN_DIR.
func cmdClusterBins(ts *testscript.TestScript, neg bool, args []string) {
	dir, err := clusterBinaries()
	ts.Check(err)
	ts.Setenv("RINGMASTER_BIN_DIR", dir)
}

func poll(ts *testscript.TestScript, what string, ok func() bool) {
	deadline := time.Now().Add(scriptDeadline)
	for !ok() {
		if time.Now().After(deadline) {
			ts.Fatalf("timed out after %v waiting for %s", scriptDeadline, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func readDiscovery(ts *testscript.TestScript, dir string) localcluster.Discovery {
	var d localcluster.Discovery
	ts.Check(json.Unmarshal([]byte(ts.ReadFile(filepath.Join(dir, localcluster.DiscoveryFile))), &d))
	return d
}

// waitcluster DIR [idle]: wait until the cluster in DIR is up (its
// discovery file exists), or with idle until its -keep job has ended.
func cmdWaitCluster(ts *testscript.TestScript, neg bool, args []string) {
	path := filepath.Join(ts.MkAbs(args[0]), localcluster.DiscoveryFile)
	idle := len(args) > 1 && args[1] == "idle"
	poll(ts, path, func() bool {
		b, err := os.ReadFile(path)
		if err != nil {
			return false
		}
		var d localcluster.Discovery
		return json.Unmarshal(b, &d) == nil && (!idle || d.Idle)
	})
}

// waitjob DIR JOB STATE: wait until the cluster in DIR reports JOB in
// STATE (running, completed, ...).
func cmdWaitJob(ts *testscript.TestScript, neg bool, args []string) {
	waitJob(ts, ts.MkAbs(args[0]), args[1], pb.JobState(pb.JobState_value["JOB_STATE_"+strings.ToUpper(args[2])]))
}

func waitJob(ts *testscript.TestScript, dir, job string, want pb.JobState) {
	d := readDiscovery(ts, dir)
	var opts []grpc.DialOption
	if d.TLSDir != "" {
		opt, err := localcluster.OperatorDialOption(d.TLSDir)
		ts.Check(err)
		opts = append(opts, opt)
	}
	cl := coord.NewClient(d.Coordinators, opts...)
	defer cl.Close()
	poll(ts, fmt.Sprintf("%s %v", job, want), func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r, err := cl.GetJob(ctx, job)
		return err == nil && r.Job.State == want
	})
}

// pidsgone DIR: every coordinator and worker the cluster in DIR started
// has exited (a zombie left for init to reap counts as exited).
func cmdPIDsGone(ts *testscript.TestScript, neg bool, args []string) {
	d := readDiscovery(ts, ts.MkAbs(args[0]))
	pids := append(append([]int{}, d.CoordPIDs...), d.Workers...)
	if len(pids) == 0 {
		ts.Fatalf("no PIDs in the discovery file")
	}
	for _, pid := range pids {
		poll(ts, fmt.Sprintf("PID %d to exit", pid), func() bool { return !alive(pid) })
	}
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// pid (comm) STATE ...
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// interrupt DIR CODE ringctl ARGS...: run ringctl, send it SIGINT once the
// cluster in DIR is up, and check it exits with CODE; its stderr becomes
// the script's stderr.
func cmdInterrupt(ts *testscript.TestScript, neg bool, args []string) {
	dir, want := ts.MkAbs(args[0]), args[1]
	path, err := exec.LookPath(args[2])
	ts.Check(err)
	cmd := exec.Command(path, args[3:]...)
	cmd.Dir = ts.Getenv("WORK")
	cmd.Env = os.Environ()
	for _, k := range []string{"RINGMASTER_BIN_DIR", "XDG_RUNTIME_DIR", "RINGMASTER_COORDINATORS"} {
		cmd.Env = append(cmd.Env, k+"="+ts.Getenv(k))
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	ts.Check(cmd.Start())
	defer func() { _ = cmd.Process.Kill() }()
	discovery := filepath.Join(dir, localcluster.DiscoveryFile)
	poll(ts, discovery, func() bool { _, err := os.Stat(discovery); return err == nil })
	waitJob(ts, dir, "job-1", pb.JobState_JOB_STATE_RUNNING)
	ts.Check(cmd.Process.Signal(os.Interrupt))
	err = cmd.Wait()
	ts.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
	if got := fmt.Sprint(cmd.ProcessState.ExitCode()); got != want {
		ts.Fatalf("exit code %s, want %s (%v)", got, want, err)
	}
	ts.Check(os.WriteFile(filepath.Join(ts.Getenv("WORK"), "interrupt.stderr"), []byte(stderr.String()), 0o644))
}

// certs ensure makes the CA once, issues what is missing, keeps what is
// valid, and reissues what a new CA or the passing of time invalidated.
func TestCertsEnsureIsIdempotent(t *testing.T) {
	root := t.TempDir()
	caDir, workers := filepath.Join(root, "ca"), filepath.Join(root, "workers")
	args := []string{"coordinator:c1", "worker:worker-{1..3}:" + workers}
	var out bytes.Buffer
	now := time.Now()
	if err := runCertsEnsure(&out, caDir, args, "", 30*24*time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), ": issued (none there)"); got != 4 || !strings.Contains(out.String(), "CA made in") {
		t.Fatalf("first run:\n%s", out.String())
	}
	for _, f := range []string{"ca.crt", "worker-1.crt", "worker-3.key"} {
		if _, err := os.Stat(filepath.Join(workers, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(workers, "ca.key")); err == nil {
		t.Fatal("the CA key was written into an OUT_DIR")
	}
	out.Reset()
	if err := runCertsEnsure(&out, caDir, args, "", 30*24*time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), ": kept"); got != 4 || strings.Contains(out.String(), "issued") {
		t.Fatalf("second run, want all kept:\n%s", out.String())
	}
	out.Reset()
	if err := runCertsEnsure(&out, caDir, args, "", 30*24*time.Hour, now.Add(340*24*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), ": issued (expires "); got != 4 {
		t.Fatalf("near expiry, want all reissued:\n%s", out.String())
	}
	if _, err := tlsauth.InitDir(caDir, 0, true); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := runCertsEnsure(&out, caDir, args, "", 30*24*time.Hour, now); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(out.String(), ": issued (not valid under this CA)"); got != 4 {
		t.Fatalf("after a new CA, want all reissued:\n%s", out.String())
	}
	ca, _ := os.ReadFile(filepath.Join(caDir, "ca.crt"))
	if w, _ := os.ReadFile(filepath.Join(workers, "ca.crt")); !bytes.Equal(ca, w) {
		t.Fatal("the workers' ca.crt is not the new CA's")
	}
	for _, bad := range []string{"worker", "pilot:x", "worker:w-{3..1}"} {
		if err := runCertsEnsure(&out, caDir, []string{bad}, "", time.Hour, now); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
