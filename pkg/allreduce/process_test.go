package allreduce

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
)

// The test binary re-executes itself as one rank of a group of real
// processes on 127.0.0.1 (see TestMain), so that a rank can be SIGKILLed.
const helperEnv = "RINGMASTER_ALLREDUCE_RANK_HELPER" // "rank,addr0,addr1,..."

// rankHelper runs all-reduces until one fails, printing "ok" after each and
// "err <error>" at the end.
func rankHelper() int {
	f := strings.Split(os.Getenv(helperEnv), ",")
	rank, _ := strconv.Atoi(f[0])
	peers := f[1:]
	srv, err := NewServer(ServerOptions{BulkAddr: "127.0.0.1:0"})
	if err != nil {
		fmt.Println("err", err)
		return 1
	}
	ln, err := net.Listen("tcp", peers[rank])
	if err != nil {
		fmt.Println("err", err)
		return 1
	}
	gs := grpc.NewServer()
	srv.Register(gs)
	go gs.Serve(ln) // owned by the helper process, which exits with it
	tr, err := srv.Join(GroupConfig{Job: "proc", Generation: 1, Rank: rank, Peers: peers, PeerTimeout: 5 * time.Second})
	if err != nil {
		fmt.Println("err", err)
		return 1
	}
	c := New(tr, Options{ChunkBytes: 64 << 10})
	buf := make([]float32, 1<<18)
	for {
		if err := c.AllReduce(context.Background(), buf, Avg); err != nil {
			fmt.Println("err", err)
			return 1
		}
		fmt.Println("ok")
	}
}

func TestSIGKILLPeerProcess(t *testing.T) {
	if testing.Short() {
		t.Skip("starts processes")
	}
	const n, victim = 4, 1
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close()
	}
	type proc struct {
		cmd   *exec.Cmd
		oks   chan struct{}
		final chan string
	}
	var procs []*proc
	var wg sync.WaitGroup
	for r := range n {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), helperEnv+"="+strconv.Itoa(r)+","+strings.Join(addrs, ","))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &proc{cmd: cmd, oks: make(chan struct{}, 1<<16), final: make(chan string, 1)}
		procs = append(procs, p)
		wg.Go(func() {
			sc := bufio.NewScanner(out)
			last := "exited without an error line"
			for sc.Scan() {
				if sc.Text() == "ok" {
					select {
					case p.oks <- struct{}{}:
					default: // enough counted
					}
				} else {
					last = sc.Text()
				}
			}
			p.final <- last
		})
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.cmd.Process.Kill()
			p.cmd.Wait()
		}
		wg.Wait()
	})
	// Kill the victim once every rank has completed a few all-reduces.
	timeout := time.After(60 * time.Second)
	for _, p := range procs {
		for range 3 {
			select {
			case <-p.oks:
			case <-timeout:
				t.Fatal("group did not start")
			}
		}
	}
	if err := procs[victim].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for r, p := range procs {
		if r == victim {
			continue
		}
		select {
		case line := <-p.final:
			t.Logf("rank %d: %s", r, line)
			if !strings.HasPrefix(line, "err ") || !strings.Contains(line, "peer rank") {
				t.Fatalf("rank %d: want an error naming a peer, got %q", r, line)
			}
		case <-timeout:
			t.Fatalf("rank %d hung after rank %d was killed", r, victim)
		}
	}
}
