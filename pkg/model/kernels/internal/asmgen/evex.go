package main

import (
	"fmt"
	"strings"
)

// Go's assembler (1.26) does not know the AVX512_BF16 instructions, so the
// generator encodes them itself and emits BYTE directives. Only the forms
// the kernels use are supported: zmm registers, and for the last source
// either a zmm register or a base+displacement memory operand, optionally
// with a {1to16} dword broadcast.

// gpr numbers Go's names of the 64-bit general registers as the hardware
// does.
var gpr = map[string]int{
	"AX": 0, "CX": 1, "DX": 2, "BX": 3, "SP": 4, "BP": 5, "SI": 6, "DI": 7,
	"R8": 8, "R9": 9, "R10": 10, "R11": 11, "R12": 12, "R13": 13, "R14": 14, "R15": 15,
}

// operand is an instruction's r/m operand: a zmm register (mem false) or
// the memory at disp(base), broadcast from one dword when bcst is set.
type operand struct {
	mem  bool
	reg  int // zmm number, or base register number
	disp int
	bcst bool
}

func zmm(n int) operand { return operand{reg: n} }

// bcstMem is the broadcast dword at disp(base).
func bcstMem(base string, disp int) operand {
	r, ok := gpr[base]
	if !ok {
		panic("asmgen: unknown base register " + base)
	}
	return operand{mem: true, reg: r, disp: disp, bcst: true}
}

// evex512 encodes a 512-bit EVEX instruction of opcode map 0F38 with
// mandatory prefix pp (1: 66, 2: F3, 3: F2), W0, no masking: reg is the
// ModRM.reg zmm, vvvv the first source zmm, rm the last operand.
func evex512(pp byte, opcode byte, reg, vvvv int, rm operand) []byte {
	if reg < 0 || reg > 31 || vvvv < 0 || vvvv > 31 || (!rm.mem && (rm.reg < 0 || rm.reg > 31)) {
		panic("asmgen: register out of range")
	}
	inv := func(v int, bit uint) byte { return byte(^v>>bit) & 1 }
	// P0: R̄ X̄ B̄ R̄' 0 0 m m (map 0F38 = 2).
	var x, b byte
	if rm.mem {
		x, b = 1, inv(rm.reg, 3) // no index register
	} else {
		x, b = inv(rm.reg, 4), inv(rm.reg, 3)
	}
	p0 := inv(reg, 3)<<7 | x<<6 | b<<5 | inv(reg, 4)<<4 | 0x2
	// P1: W v̄v̄v̄v̄ 1 p p.
	p1 := byte(^vvvv&0xf)<<3 | 1<<2 | pp
	// P2: z L'L b V̄' a a a (L'L = 2: 512 bits).
	var bc byte
	if rm.bcst {
		bc = 1
	}
	p2 := 2<<5 | bc<<4 | inv(vvvv, 4)<<3
	out := []byte{0x62, p0, p1, p2, opcode}
	modrmReg := byte(reg&7) << 3
	if !rm.mem {
		return append(out, 0xc0|modrmReg|byte(rm.reg&7))
	}
	// Compressed displacement: disp8 is scaled by the memory operand's
	// size, 4 for a dword broadcast, 64 for a full zmm.
	n := 64
	if rm.bcst {
		n = 4
	}
	base := byte(rm.reg & 7)
	var mod byte
	var disp []byte
	switch {
	case rm.disp == 0 && base != 5: // [RBP]/[R13] need a displacement
		mod = 0
	case rm.disp%n == 0 && rm.disp/n >= -128 && rm.disp/n <= 127:
		mod, disp = 1, []byte{byte(int8(rm.disp / n))}
	default:
		d := uint32(int32(rm.disp))
		mod, disp = 2, []byte{byte(d), byte(d >> 8), byte(d >> 16), byte(d >> 24)}
	}
	out = append(out, mod<<6|modrmReg|base)
	if base == 4 { // RSP/R12 as base need a SIB byte (no index)
		out = append(out, 0x24)
	}
	return append(out, disp...)
}

// vdpbf16ps encodes VDPBF16PS dst, src1, src2 (Intel order): for each fp32
// lane i, dst[i] += src1.bf16[2i+1]·src2.bf16[2i+1] + src1.bf16[2i]·src2.bf16[2i].
func vdpbf16ps(dst, src1 int, src2 operand) []byte { return evex512(2, 0x52, dst, src1, src2) }

// vcvtne2ps2bf16 encodes VCVTNE2PS2BF16 dst, src1, src2 (Intel order): the
// low 16 words of dst are src2 rounded to bf16, the high 16 src1.
func vcvtne2ps2bf16(dst, src1, src2 int) []byte { return evex512(3, 0x72, dst, src1, zmm(src2)) }

// byteDirective renders an encoding as a Go assembler BYTE line with the
// instruction in AT&T syntax as a comment.
func byteDirective(enc []byte, comment string) string {
	parts := make([]string, len(enc))
	for i, c := range enc {
		parts[i] = fmt.Sprintf("BYTE $0x%02x", c)
	}
	return "\t" + strings.Join(parts, "; ") + " // " + comment
}

// att renders rm in AT&T syntax (for comments and the binutils test).
func (rm operand) att() string {
	if !rm.mem {
		return fmt.Sprintf("%%zmm%d", rm.reg)
	}
	names := []string{"rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15"}
	s := fmt.Sprintf("%d(%%%s)", rm.disp, names[rm.reg])
	if rm.bcst {
		s += "{1to16}"
	}
	return s
}
