//go:build amd64 && !purego

#include "textflag.h"

// func packBN32(dst, src *float32, ldb, kc int)
// dst[p*32+c] = src[p*ldb+c] for c < 32, p < kc: a plain B panel, two
// 64-byte moves per depth step (copy() would make one call per row).
TEXT ·packBN32(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), BX
	SHLQ $2, BX
	MOVQ kc+24(FP), CX
	TESTQ CX, CX
	JZ   bndone
bnloop:
	VMOVUPS (SI), Z0
	VMOVUPS 64(SI), Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ BX, SI
	ADDQ $128, DI
	DECQ CX
	JNZ  bnloop
bndone:
	VZEROUPPER
	RET
