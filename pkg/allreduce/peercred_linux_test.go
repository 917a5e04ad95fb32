package allreduce

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ringmaster-ml/ringmaster/pkg/tlsauth"
)

// dialUnixEnv makes the test binary a process that dials the abstract Unix
// socket it names and holds the connection until the other end closes it.
const dialUnixEnv = "RINGMASTER_TEST_DIAL_UNIX"

func dialUnixHelper(name string) int {
	c, err := net.Dial("unix", name)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer c.Close()
	_, _ = io.Copy(io.Discard, c)
	return 0
}

// A same-host bulk link carries no certificate: the listener checks with
// SO_PEERCRED that the dialling process runs as its own user. A process of
// another user (the test binary re-run as nobody, uid 65534) is refused,
// naming both uids; the listener's own user is accepted.
func TestLocalBulkLinkRefusesAnotherUser(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root, to run the dialling process as another user")
	}
	l, err := net.Listen("unix", localBulkName())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	// The test binary, where uid 65534 may run it.
	dir, err := os.MkdirTemp("", "peercred")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	self, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "allreduce.test")
	if err := os.WriteFile(bin, self, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	accept := func() net.Conn {
		t.Helper()
		type result struct {
			c   net.Conn
			err error
		}
		ch := make(chan result, 1)
		go func() { c, err := l.Accept(); ch <- result{c, err} }()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatal(r.err)
			}
			return r.c
		case <-time.After(30 * time.Second):
			t.Fatal("no connection within 30 s")
			return nil
		}
	}

	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), dialUnixEnv+"="+l.Addr().String())
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := accept()
	err = samePeerUser(c)
	c.Close()
	if werr := cmd.Wait(); werr != nil {
		t.Errorf("dialling process: %v: %s", werr, stderr.String())
	}
	var rej *tlsauth.Rejection
	if !errors.As(err, &rej) || rej.Reason != "peer_credentials" || !errors.Is(err, ErrUnauthorized) ||
		!strings.Contains(err.Error(), "uid 65534, this worker runs as uid 0") {
		t.Fatalf("link from uid 65534: %v, want a peer_credentials rejection naming both uids", err)
	}

	// The same user is accepted.
	d, err := net.Dial("unix", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	c = accept()
	defer c.Close()
	if err := samePeerUser(c); err != nil {
		t.Fatalf("link from this process's own user: %v", err)
	}
}
