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

// func packBT32(dst, src *float32, idx *[16]int32, ldb, kc int)
// dst[p*32+c] = src[c*ldb+p] for c < 32, p < kc: a transposed B panel,
// gathered 16 columns at a time (idx[c] = c·ldb).
TEXT ·packBT32(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ idx+16(FP), AX
	MOVQ ldb+24(FP), BX
	MOVQ kc+32(FP), CX
	VMOVDQU32 (AX), Z2
	SHLQ $6, BX
	LEAQ (SI)(BX*1), R8
	TESTQ CX, CX
	JZ   btdone
btloop:
	KXNORW K1, K1, K1
	KXNORW K2, K2, K2
	VGATHERDPS (SI)(Z2*4), K1, Z0
	VGATHERDPS (R8)(Z2*4), K2, Z1
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ $4, SI
	ADDQ $4, R8
	ADDQ $128, DI
	DECQ CX
	JNZ  btloop
btdone:
	VZEROUPPER
	RET

// func packBT16(dst, src *float32, idx *[16]int32, kc int)
// dst[p*16+c] = src[c*ldb+p] for c < 16, p < kc: packBT32 for the 16-column
// panels of the AVX2 kernel when it runs on an AVX-512 machine.
TEXT ·packBT16(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ idx+16(FP), AX
	MOVQ kc+24(FP), CX
	VMOVDQU32 (AX), Z2
	TESTQ CX, CX
	JZ   bt16done
bt16loop:
	KXNORW K1, K1, K1
	VGATHERDPS (SI)(Z2*4), K1, Z0
	VMOVUPS Z0, (DI)
	ADDQ $4, SI
	ADDQ $64, DI
	DECQ CX
	JNZ  bt16loop
bt16done:
	VZEROUPPER
	RET
