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

// func packBTT(dst, src *float32, ldb, kc, nr int)
// packBT32/packBT16 by 8×8 in-register transposes instead of gathers
// (gathers run at ~1 element per cycle here, the transposes at several):
// dst[p*nr+c] = src[c*ldb+p] for c < nr (a multiple of 8), p < kc (a
// multiple of 8, > 0).
TEXT ·packBTT(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ldb+16(FP), BX
	SHLQ $2, BX
	MOVQ kc+24(FP), CX
	MOVQ nr+32(FP), R11
	MOVQ R11, R13
	SHLQ $2, R13
	LEAQ (BX)(BX*2), R9
	LEAQ (R13)(R13*2), R14
	SHRQ $3, R11

ttGroup:
	MOVQ SI, R8
	MOVQ DI, DX
	MOVQ CX, R12

ttBlock:
	LEAQ    (R8)(BX*4), R10
	VMOVUPS (R8), Y0
	VMOVUPS (R8)(BX*1), Y1
	VMOVUPS (R8)(BX*2), Y2
	VMOVUPS (R8)(R9*1), Y3
	VMOVUPS (R10), Y4
	VMOVUPS (R10)(BX*1), Y5
	VMOVUPS (R10)(BX*2), Y6
	VMOVUPS (R10)(R9*1), Y7

	VUNPCKLPS Y1, Y0, Y8
	VUNPCKHPS Y1, Y0, Y9
	VUNPCKLPS Y3, Y2, Y10
	VUNPCKHPS Y3, Y2, Y11
	VUNPCKLPS Y5, Y4, Y12
	VUNPCKHPS Y5, Y4, Y13
	VUNPCKLPS Y7, Y6, Y14
	VUNPCKHPS Y7, Y6, Y15

	VSHUFPS $0x44, Y10, Y8, Y0
	VSHUFPS $0xEE, Y10, Y8, Y1
	VSHUFPS $0x44, Y11, Y9, Y2
	VSHUFPS $0xEE, Y11, Y9, Y3
	VSHUFPS $0x44, Y14, Y12, Y4
	VSHUFPS $0xEE, Y14, Y12, Y5
	VSHUFPS $0x44, Y15, Y13, Y6
	VSHUFPS $0xEE, Y15, Y13, Y7

	VPERM2F128 $0x20, Y4, Y0, Y8
	VPERM2F128 $0x20, Y5, Y1, Y9
	VPERM2F128 $0x20, Y6, Y2, Y10
	VPERM2F128 $0x20, Y7, Y3, Y11
	VPERM2F128 $0x31, Y4, Y0, Y12
	VPERM2F128 $0x31, Y5, Y1, Y13
	VPERM2F128 $0x31, Y6, Y2, Y14
	VPERM2F128 $0x31, Y7, Y3, Y15

	LEAQ    (DX)(R13*4), AX
	VMOVUPS Y8, (DX)
	VMOVUPS Y9, (DX)(R13*1)
	VMOVUPS Y10, (DX)(R13*2)
	VMOVUPS Y11, (DX)(R14*1)
	VMOVUPS Y12, (AX)
	VMOVUPS Y13, (AX)(R13*1)
	VMOVUPS Y14, (AX)(R13*2)
	VMOVUPS Y15, (AX)(R14*1)

	ADDQ $32, R8
	LEAQ (DX)(R13*8), DX
	SUBQ $8, R12
	JNZ  ttBlock

	LEAQ (SI)(BX*8), SI
	ADDQ $32, DI
	DECQ R11
	JNZ  ttGroup
	VZEROUPPER
	RET
