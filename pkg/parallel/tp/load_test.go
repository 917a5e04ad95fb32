package tp_test

import (
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ringmaster-ml/ringmaster/pkg/model"
)

// A tensor-parallel rank loading whole weights in Hugging Face's GPT-2
// layout (written by model's independent generator script) takes its piece:
// the same parameters as a rank built from the source's seed.
func TestRankLoadsItsPieceOfHFWeights(t *testing.T) {
	cfg := model.Config{Arch: model.ArchGPT, NLayer: 2, NHead: 4, NEmbd: 32, BlockSize: 16, VocabSize: 50, Bias: true, Activation: model.GELUTanh}.WithDefaults()
	src, err := model.New(cfg, 1)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	nano := filepath.Join(dir, "nanogpt.safetensors")
	if err := model.SaveFile(nano, src.Params(), nil); err != nil {
		t.Fatal(err)
	}
	hf := filepath.Join(dir, "hf.safetensors")
	if out, err := exec.Command("python3", "../../model/testdata/gen_hf_gpt2.py", nano, hf, "16").CombinedOutput(); err != nil {
		t.Skipf("python3 gen_hf_gpt2.py: %v\n%s", err, out)
	}
	nothing := func([]float32) error { return nil }
	for rank := range 2 {
		ref, err := model.New(cfg, 1, rankOf(t, rank, 2, nothing))
		if err != nil {
			t.Fatal(err)
		}
		dst, err := model.New(cfg, 2, rankOf(t, rank, 2, nothing))
		if err != nil {
			t.Fatal(err)
		}
		if slices.Equal(dst.Params().Data, ref.Params().Data) {
			t.Fatalf("TP rank %d: seeds 1 and 2 give the same parameters; the comparison is vacuous", rank)
		}
		if err := model.LoadWeights(hf, dst.Params()); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(dst.Params().Data, ref.Params().Data) {
			t.Fatalf("TP rank %d: loaded pieces differ from the rank's slices of the source", rank)
		}
	}
}
