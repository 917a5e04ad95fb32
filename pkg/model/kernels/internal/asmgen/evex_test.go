package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestEVEXMatchesBinutils assembles every register combination and a spread
// of memory operands with GNU as and checks the generator's bytes are
// identical. Skipped where binutils is not installed (.ci/run installs it).
func TestEVEXMatchesBinutils(t *testing.T) {
	asPath, err := exec.LookPath("as")
	if err != nil {
		t.Skip("GNU as not installed (apt-get install binutils)")
	}
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		t.Skip("objcopy not installed (apt-get install binutils)")
	}
	type inst struct {
		att string
		enc []byte
	}
	var insts []inst
	regs := []int{0, 1, 2, 3, 5, 7, 8, 9, 13, 15, 16, 17, 23, 24, 28, 29, 31}
	for _, d := range regs {
		for _, s1 := range regs {
			for _, s2 := range regs {
				insts = append(insts,
					inst{fmt.Sprintf("vdpbf16ps %%zmm%d,%%zmm%d,%%zmm%d", s2, s1, d), vdpbf16ps(d, s1, zmm(s2))},
					inst{fmt.Sprintf("vcvtne2ps2bf16 %%zmm%d,%%zmm%d,%%zmm%d", s2, s1, d), vcvtne2ps2bf16(d, s1, s2)})
			}
		}
	}
	for base := range gpr {
		for _, disp := range []int{0, 4, 8, 52, 60, 508, 512, 516, 1000, -4, -512, -516, 4096, 6} {
			for _, d := range []int{0, 9, 27, 31} {
				for _, s1 := range []int{1, 12, 28} {
					m := bcstMem(base, disp)
					insts = append(insts, inst{fmt.Sprintf("vdpbf16ps %s,%%zmm%d,%%zmm%d", m.att(), s1, d), vdpbf16ps(d, s1, m)})
				}
			}
		}
	}
	dir := t.TempDir()
	var src strings.Builder
	for _, in := range insts {
		src.WriteString(in.att + "\n")
	}
	sFile, oFile, binFile := filepath.Join(dir, "t.s"), filepath.Join(dir, "t.o"), filepath.Join(dir, "t.bin")
	if err := os.WriteFile(sFile, []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(asPath, "--64", "-o", oFile, sFile).CombinedOutput(); err != nil {
		t.Fatalf("as: %v\n%s", err, out)
	}
	if out, err := exec.Command(objcopy, "-O", "binary", "-j", ".text", oFile, binFile).CombinedOutput(); err != nil {
		t.Fatalf("objcopy: %v\n%s", err, out)
	}
	got, err := os.ReadFile(binFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range insts {
		if !bytes.HasPrefix(got, in.enc) {
			n := min(len(got), len(in.enc)+4)
			t.Fatalf("%s: generator % x, binutils % x", in.att, in.enc, got[:n])
		}
		got = got[len(in.enc):]
	}
	if len(got) != 0 {
		t.Fatalf("%d bytes left over from binutils", len(got))
	}
	t.Logf("%d instructions identical", len(insts))
}

// TestEVEXIssueExample pins the encoding quoted in the issue, so the
// encoder is checked even where binutils is missing.
func TestEVEXIssueExample(t *testing.T) {
	got := vdpbf16ps(3, 2, zmm(1))
	want := []byte{0x62, 0xf2, 0x6e, 0x48, 0x52, 0xd9}
	if !bytes.Equal(got, want) {
		t.Fatalf("vdpbf16ps %%zmm1,%%zmm2,%%zmm3 = % x, want % x", got, want)
	}
	got = vdpbf16ps(27, 29, bcstMem("SI", 8))
	want = []byte{0x62, 0x62, 0x16, 0x50, 0x52, 0x5e, 0x02}
	if !bytes.Equal(got, want) {
		t.Fatalf("vdpbf16ps 8(%%rsi){1to16},%%zmm29,%%zmm27 = % x, want % x", got, want)
	}
}
