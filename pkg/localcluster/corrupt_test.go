package localcluster

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/bbolt"

	pb "github.com/ringmaster-ml/ringmaster/proto/ringmaster/v1"
)

// flipShardByte flips one bit in the parameters of the stored shard (job,
// step, tp) in a stopped worker's checkpoint file, as a bad disk would.
func flipShardByte(t *testing.T, dbPath, job string, step, tp int) {
	t.Helper()
	db, err := bbolt.Open(dbPath, 0o600, &bbolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	key := make([]byte, 12)
	binary.BigEndian.PutUint64(key, uint64(step))
	binary.BigEndian.PutUint32(key[8:], uint32(tp))
	if err := db.Update(func(tx *bbolt.Tx) error {
		cb := tx.Bucket([]byte("jobs")).Bucket([]byte(job)).Bucket(key)
		if cb == nil {
			t.Fatalf("%s holds no shard of %s step %d tp %d", dbPath, job, step, tp)
		}
		v := append([]byte(nil), cb.Get([]byte("data/000000"))...)
		v[len(v)/2] ^= 0x10
		return cb.Put([]byte("data/000000"), v)
	}); err != nil {
		t.Fatal(err)
	}
}

func workerLog(t *testing.T, p *Proc) string {
	t.Helper()
	b, err := os.ReadFile(p.Log)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Real processes: a one-worker job (its shards have no other holder), the
// worker SIGKILLed and the newest committed checkpoint's shard corrupted on
// its disk before it restarts. The worker finds the corruption by checksum,
// reports that no correct copy exists, the coordinator drops that
// checkpoint and the job resumes from the previous committed one, saying
// so, and ends where one process ends.
func TestClusterFallsBackToThePreviousCheckpoint(t *testing.T) {
	spec := smallSpec(t, "train.max_iters=400", "train.learning_rate=3e-4", "train.min_lr=3e-5")
	want := reference(t, spec)
	c := startCluster(t, 1)
	_, job := submit(t, c, spec)
	w := c.Workers[0]
	var corrupted int64
	var reasons []string
	var resumes []int64
	end := waitJob(t, c, job.Id, 4*time.Minute, func(r *pb.GetJobResponse) {
		if g := r.Generation; g != nil && (len(reasons) == 0 || reasons[len(reasons)-1] != g.Reason) {
			reasons, resumes = append(reasons, g.Reason), append(resumes, g.ResumeStep)
		}
		if corrupted == 0 && r.Job.CommittedStep >= 150 {
			w.Signal(syscall.SIGKILL)
			w.Wait()
			cl := c.Client()
			r2, err := cl.GetJob(t.Context(), job.Id)
			cl.Close()
			if err != nil {
				t.Fatal(err)
			}
			corrupted = r2.Job.CommittedStep
			flipShardByte(t, filepath.Join(c.DataDir(w), "checkpoints.db"), job.Id, int(corrupted), 0)
			if err := c.Restart(w); err != nil {
				t.Error(err)
			}
		}
	})
	if end.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job ended %v: %s", end.State, end.Reason)
	}
	fellBack := false
	for i, r := range reasons {
		if strings.Contains(r, "unavailable; resuming from step") && resumes[i] < corrupted && resumes[i] > 0 {
			fellBack = true
		}
	}
	if !fellBack {
		t.Errorf("generations (reason, resume step) %q %v: none fell back from the corrupt step %d to an earlier committed one", reasons, resumes, corrupted)
	}
	log := workerLog(t, w)
	for _, s := range []string{"stored checkpoint is corrupt", "crc32c", "no correct copy of the resume checkpoint"} {
		if !strings.Contains(log, s) {
			t.Errorf("worker log does not say %q", s)
		}
	}
	compareModel(t, c.ModelDir(job.Id), want)
}

// Real processes: DP 2; one worker SIGKILLed and its checkpoint file
// truncated to half (a partial copy). On restart it moves the file aside,
// starts with an empty store, fetches its shard from the other replica and
// the job ends where one process ends.
func TestClusterTruncatedStoreIsRefetchedFromAReplica(t *testing.T) {
	spec := smallSpec(t, "train.max_iters=400", "train.learning_rate=3e-4", "train.min_lr=3e-5", "parallel.min_workers=2")
	want := reference(t, spec)
	c := startCluster(t, 2)
	_, job := submit(t, c, spec)
	w := c.Workers[1]
	done := false
	end := waitJob(t, c, job.Id, 4*time.Minute, func(r *pb.GetJobResponse) {
		if !done && r.Job.CommittedStep >= 100 {
			done = true
			w.Signal(syscall.SIGKILL)
			w.Wait()
			path := filepath.Join(c.DataDir(w), "checkpoints.db")
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.Truncate(path, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
			if err := c.Restart(w); err != nil {
				t.Error(err)
			}
		}
	})
	if end.State != pb.JobState_JOB_STATE_COMPLETED {
		t.Fatalf("job ended %v: %s", end.State, end.Reason)
	}
	log := workerLog(t, w)
	for _, s := range []string{"checkpoint store is corrupt; moved aside", "checkpoint shard received from a peer", "kind=fetch"} {
		if !strings.Contains(log, s) {
			t.Errorf("%s's log does not say %q", w.Name, s)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(c.DataDir(w), "checkpoints.db.corrupt-*")); len(m) != 1 {
		t.Errorf("corrupt store kept as %v, want one file", m)
	}
	compareModel(t, c.ModelDir(job.Id), want)
}
