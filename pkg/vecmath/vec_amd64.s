//go:build amd64 && !purego

#include "textflag.h"

// Elementwise float32 kernels, AVX2+FMA, 8 lanes. Every function handles
// n rounded down to a multiple of 8; the Go wrappers finish the tail with
// the pure-Go versions (vecmath.go), which follow the same formulas.

// ONE = 1
DATA consts<>+0(SB)/4, $0x3f800000
DATA consts<>+4(SB)/4, $0x3f800000
DATA consts<>+8(SB)/4, $0x3f800000
DATA consts<>+12(SB)/4, $0x3f800000
DATA consts<>+16(SB)/4, $0x3f800000
DATA consts<>+20(SB)/4, $0x3f800000
DATA consts<>+24(SB)/4, $0x3f800000
DATA consts<>+28(SB)/4, $0x3f800000
// HALF = 0.5
DATA consts<>+32(SB)/4, $0x3f000000
DATA consts<>+36(SB)/4, $0x3f000000
DATA consts<>+40(SB)/4, $0x3f000000
DATA consts<>+44(SB)/4, $0x3f000000
DATA consts<>+48(SB)/4, $0x3f000000
DATA consts<>+52(SB)/4, $0x3f000000
DATA consts<>+56(SB)/4, $0x3f000000
DATA consts<>+60(SB)/4, $0x3f000000
// ABS = abs mask
DATA consts<>+64(SB)/4, $0x7fffffff
DATA consts<>+68(SB)/4, $0x7fffffff
DATA consts<>+72(SB)/4, $0x7fffffff
DATA consts<>+76(SB)/4, $0x7fffffff
DATA consts<>+80(SB)/4, $0x7fffffff
DATA consts<>+84(SB)/4, $0x7fffffff
DATA consts<>+88(SB)/4, $0x7fffffff
DATA consts<>+92(SB)/4, $0x7fffffff
// SIGN = sign mask
DATA consts<>+96(SB)/4, $0x80000000
DATA consts<>+100(SB)/4, $0x80000000
DATA consts<>+104(SB)/4, $0x80000000
DATA consts<>+108(SB)/4, $0x80000000
DATA consts<>+112(SB)/4, $0x80000000
DATA consts<>+116(SB)/4, $0x80000000
DATA consts<>+120(SB)/4, $0x80000000
DATA consts<>+124(SB)/4, $0x80000000
// EXPLO = -87.3365402
DATA consts<>+128(SB)/4, $0xc2aeac4f
DATA consts<>+132(SB)/4, $0xc2aeac4f
DATA consts<>+136(SB)/4, $0xc2aeac4f
DATA consts<>+140(SB)/4, $0xc2aeac4f
DATA consts<>+144(SB)/4, $0xc2aeac4f
DATA consts<>+148(SB)/4, $0xc2aeac4f
DATA consts<>+152(SB)/4, $0xc2aeac4f
DATA consts<>+156(SB)/4, $0xc2aeac4f
// EXPHI = 88.3762589
DATA consts<>+160(SB)/4, $0x42b0c0a5
DATA consts<>+164(SB)/4, $0x42b0c0a5
DATA consts<>+168(SB)/4, $0x42b0c0a5
DATA consts<>+172(SB)/4, $0x42b0c0a5
DATA consts<>+176(SB)/4, $0x42b0c0a5
DATA consts<>+180(SB)/4, $0x42b0c0a5
DATA consts<>+184(SB)/4, $0x42b0c0a5
DATA consts<>+188(SB)/4, $0x42b0c0a5
// LOG2E = 1.44269502
DATA consts<>+192(SB)/4, $0x3fb8aa3b
DATA consts<>+196(SB)/4, $0x3fb8aa3b
DATA consts<>+200(SB)/4, $0x3fb8aa3b
DATA consts<>+204(SB)/4, $0x3fb8aa3b
DATA consts<>+208(SB)/4, $0x3fb8aa3b
DATA consts<>+212(SB)/4, $0x3fb8aa3b
DATA consts<>+216(SB)/4, $0x3fb8aa3b
DATA consts<>+220(SB)/4, $0x3fb8aa3b
// LN2HI = 0.693359375
DATA consts<>+224(SB)/4, $0x3f318000
DATA consts<>+228(SB)/4, $0x3f318000
DATA consts<>+232(SB)/4, $0x3f318000
DATA consts<>+236(SB)/4, $0x3f318000
DATA consts<>+240(SB)/4, $0x3f318000
DATA consts<>+244(SB)/4, $0x3f318000
DATA consts<>+248(SB)/4, $0x3f318000
DATA consts<>+252(SB)/4, $0x3f318000
// LN2LO = -0.000212194442
DATA consts<>+256(SB)/4, $0xb95e8083
DATA consts<>+260(SB)/4, $0xb95e8083
DATA consts<>+264(SB)/4, $0xb95e8083
DATA consts<>+268(SB)/4, $0xb95e8083
DATA consts<>+272(SB)/4, $0xb95e8083
DATA consts<>+276(SB)/4, $0xb95e8083
DATA consts<>+280(SB)/4, $0xb95e8083
DATA consts<>+284(SB)/4, $0xb95e8083
// EP0 = 0.000198756912
DATA consts<>+288(SB)/4, $0x39506967
DATA consts<>+292(SB)/4, $0x39506967
DATA consts<>+296(SB)/4, $0x39506967
DATA consts<>+300(SB)/4, $0x39506967
DATA consts<>+304(SB)/4, $0x39506967
DATA consts<>+308(SB)/4, $0x39506967
DATA consts<>+312(SB)/4, $0x39506967
DATA consts<>+316(SB)/4, $0x39506967
// EP1 = 0.00139819994
DATA consts<>+320(SB)/4, $0x3ab743ce
DATA consts<>+324(SB)/4, $0x3ab743ce
DATA consts<>+328(SB)/4, $0x3ab743ce
DATA consts<>+332(SB)/4, $0x3ab743ce
DATA consts<>+336(SB)/4, $0x3ab743ce
DATA consts<>+340(SB)/4, $0x3ab743ce
DATA consts<>+344(SB)/4, $0x3ab743ce
DATA consts<>+348(SB)/4, $0x3ab743ce
// EP2 = 0.00833345205
DATA consts<>+352(SB)/4, $0x3c088908
DATA consts<>+356(SB)/4, $0x3c088908
DATA consts<>+360(SB)/4, $0x3c088908
DATA consts<>+364(SB)/4, $0x3c088908
DATA consts<>+368(SB)/4, $0x3c088908
DATA consts<>+372(SB)/4, $0x3c088908
DATA consts<>+376(SB)/4, $0x3c088908
DATA consts<>+380(SB)/4, $0x3c088908
// EP3 = 0.0416657962
DATA consts<>+384(SB)/4, $0x3d2aa9c1
DATA consts<>+388(SB)/4, $0x3d2aa9c1
DATA consts<>+392(SB)/4, $0x3d2aa9c1
DATA consts<>+396(SB)/4, $0x3d2aa9c1
DATA consts<>+400(SB)/4, $0x3d2aa9c1
DATA consts<>+404(SB)/4, $0x3d2aa9c1
DATA consts<>+408(SB)/4, $0x3d2aa9c1
DATA consts<>+412(SB)/4, $0x3d2aa9c1
// EP4 = 0.166666657
DATA consts<>+416(SB)/4, $0x3e2aaaaa
DATA consts<>+420(SB)/4, $0x3e2aaaaa
DATA consts<>+424(SB)/4, $0x3e2aaaaa
DATA consts<>+428(SB)/4, $0x3e2aaaaa
DATA consts<>+432(SB)/4, $0x3e2aaaaa
DATA consts<>+436(SB)/4, $0x3e2aaaaa
DATA consts<>+440(SB)/4, $0x3e2aaaaa
DATA consts<>+444(SB)/4, $0x3e2aaaaa
// EP5 = 0.5
DATA consts<>+448(SB)/4, $0x3f000000
DATA consts<>+452(SB)/4, $0x3f000000
DATA consts<>+456(SB)/4, $0x3f000000
DATA consts<>+460(SB)/4, $0x3f000000
DATA consts<>+464(SB)/4, $0x3f000000
DATA consts<>+468(SB)/4, $0x3f000000
DATA consts<>+472(SB)/4, $0x3f000000
DATA consts<>+476(SB)/4, $0x3f000000
// I127 = int32 127
DATA consts<>+480(SB)/4, $0x0000007f
DATA consts<>+484(SB)/4, $0x0000007f
DATA consts<>+488(SB)/4, $0x0000007f
DATA consts<>+492(SB)/4, $0x0000007f
DATA consts<>+496(SB)/4, $0x0000007f
DATA consts<>+500(SB)/4, $0x0000007f
DATA consts<>+504(SB)/4, $0x0000007f
DATA consts<>+508(SB)/4, $0x0000007f
// RSQRT2 = 0.707106769
DATA consts<>+512(SB)/4, $0x3f3504f3
DATA consts<>+516(SB)/4, $0x3f3504f3
DATA consts<>+520(SB)/4, $0x3f3504f3
DATA consts<>+524(SB)/4, $0x3f3504f3
DATA consts<>+528(SB)/4, $0x3f3504f3
DATA consts<>+532(SB)/4, $0x3f3504f3
DATA consts<>+536(SB)/4, $0x3f3504f3
DATA consts<>+540(SB)/4, $0x3f3504f3
// RSQRT2PI = 0.398942292
DATA consts<>+544(SB)/4, $0x3ecc422a
DATA consts<>+548(SB)/4, $0x3ecc422a
DATA consts<>+552(SB)/4, $0x3ecc422a
DATA consts<>+556(SB)/4, $0x3ecc422a
DATA consts<>+560(SB)/4, $0x3ecc422a
DATA consts<>+564(SB)/4, $0x3ecc422a
DATA consts<>+568(SB)/4, $0x3ecc422a
DATA consts<>+572(SB)/4, $0x3ecc422a
// ERFCLAMP = 10
DATA consts<>+576(SB)/4, $0x41200000
DATA consts<>+580(SB)/4, $0x41200000
DATA consts<>+584(SB)/4, $0x41200000
DATA consts<>+588(SB)/4, $0x41200000
DATA consts<>+592(SB)/4, $0x41200000
DATA consts<>+596(SB)/4, $0x41200000
DATA consts<>+600(SB)/4, $0x41200000
DATA consts<>+604(SB)/4, $0x41200000
// ERFTHR = 0.927734375
DATA consts<>+608(SB)/4, $0x3f6d8000
DATA consts<>+612(SB)/4, $0x3f6d8000
DATA consts<>+616(SB)/4, $0x3f6d8000
DATA consts<>+620(SB)/4, $0x3f6d8000
DATA consts<>+624(SB)/4, $0x3f6d8000
DATA consts<>+628(SB)/4, $0x3f6d8000
DATA consts<>+632(SB)/4, $0x3f6d8000
DATA consts<>+636(SB)/4, $0x3f6d8000
// ES0 = -0.000596761703
DATA consts<>+640(SB)/4, $0xba1c7000
DATA consts<>+644(SB)/4, $0xba1c7000
DATA consts<>+648(SB)/4, $0xba1c7000
DATA consts<>+652(SB)/4, $0xba1c7000
DATA consts<>+656(SB)/4, $0xba1c7000
DATA consts<>+660(SB)/4, $0xba1c7000
DATA consts<>+664(SB)/4, $0xba1c7000
DATA consts<>+668(SB)/4, $0xba1c7000
// ES1 = 0.00499119423
DATA consts<>+672(SB)/4, $0x3ba38d2c
DATA consts<>+676(SB)/4, $0x3ba38d2c
DATA consts<>+680(SB)/4, $0x3ba38d2c
DATA consts<>+684(SB)/4, $0x3ba38d2c
DATA consts<>+688(SB)/4, $0x3ba38d2c
DATA consts<>+692(SB)/4, $0x3ba38d2c
DATA consts<>+696(SB)/4, $0x3ba38d2c
DATA consts<>+700(SB)/4, $0x3ba38d2c
// ES2 = -0.0267681349
DATA consts<>+704(SB)/4, $0xbcdb48d9
DATA consts<>+708(SB)/4, $0xbcdb48d9
DATA consts<>+712(SB)/4, $0xbcdb48d9
DATA consts<>+716(SB)/4, $0xbcdb48d9
DATA consts<>+720(SB)/4, $0xbcdb48d9
DATA consts<>+724(SB)/4, $0xbcdb48d9
DATA consts<>+728(SB)/4, $0xbcdb48d9
DATA consts<>+732(SB)/4, $0xbcdb48d9
// ES3 = 0.112819925
DATA consts<>+736(SB)/4, $0x3de70e22
DATA consts<>+740(SB)/4, $0x3de70e22
DATA consts<>+744(SB)/4, $0x3de70e22
DATA consts<>+748(SB)/4, $0x3de70e22
DATA consts<>+752(SB)/4, $0x3de70e22
DATA consts<>+756(SB)/4, $0x3de70e22
DATA consts<>+760(SB)/4, $0x3de70e22
DATA consts<>+764(SB)/4, $0x3de70e22
// ES4 = -0.376125336
DATA consts<>+768(SB)/4, $0xbec09380
DATA consts<>+772(SB)/4, $0xbec09380
DATA consts<>+776(SB)/4, $0xbec09380
DATA consts<>+780(SB)/4, $0xbec09380
DATA consts<>+784(SB)/4, $0xbec09380
DATA consts<>+788(SB)/4, $0xbec09380
DATA consts<>+792(SB)/4, $0xbec09380
DATA consts<>+796(SB)/4, $0xbec09380
// ES5 = 0.128379166
DATA consts<>+800(SB)/4, $0x3e0375d4
DATA consts<>+804(SB)/4, $0x3e0375d4
DATA consts<>+808(SB)/4, $0x3e0375d4
DATA consts<>+812(SB)/4, $0x3e0375d4
DATA consts<>+816(SB)/4, $0x3e0375d4
DATA consts<>+820(SB)/4, $0x3e0375d4
DATA consts<>+824(SB)/4, $0x3e0375d4
DATA consts<>+828(SB)/4, $0x3e0375d4
// EL0 = -1.7285347e-05
DATA consts<>+832(SB)/4, $0xb7910000
DATA consts<>+836(SB)/4, $0xb7910000
DATA consts<>+840(SB)/4, $0xb7910000
DATA consts<>+844(SB)/4, $0xb7910000
DATA consts<>+848(SB)/4, $0xb7910000
DATA consts<>+852(SB)/4, $0xb7910000
DATA consts<>+856(SB)/4, $0xb7910000
DATA consts<>+860(SB)/4, $0xb7910000
// EL1 = 0.000383197126
DATA consts<>+864(SB)/4, $0x39c8e7d9
DATA consts<>+868(SB)/4, $0x39c8e7d9
DATA consts<>+872(SB)/4, $0x39c8e7d9
DATA consts<>+876(SB)/4, $0x39c8e7d9
DATA consts<>+880(SB)/4, $0x39c8e7d9
DATA consts<>+884(SB)/4, $0x39c8e7d9
DATA consts<>+888(SB)/4, $0x39c8e7d9
DATA consts<>+892(SB)/4, $0x39c8e7d9
// EL2 = -0.00388396438
DATA consts<>+896(SB)/4, $0xbb7e8a1c
DATA consts<>+900(SB)/4, $0xbb7e8a1c
DATA consts<>+904(SB)/4, $0xbb7e8a1c
DATA consts<>+908(SB)/4, $0xbb7e8a1c
DATA consts<>+912(SB)/4, $0xbb7e8a1c
DATA consts<>+916(SB)/4, $0xbb7e8a1c
DATA consts<>+920(SB)/4, $0xbb7e8a1c
DATA consts<>+924(SB)/4, $0xbb7e8a1c
// EL3 = 0.0242546219
DATA consts<>+928(SB)/4, $0x3cc6b1a1
DATA consts<>+932(SB)/4, $0x3cc6b1a1
DATA consts<>+936(SB)/4, $0x3cc6b1a1
DATA consts<>+940(SB)/4, $0x3cc6b1a1
DATA consts<>+944(SB)/4, $0x3cc6b1a1
DATA consts<>+948(SB)/4, $0x3cc6b1a1
DATA consts<>+952(SB)/4, $0x3cc6b1a1
DATA consts<>+956(SB)/4, $0x3cc6b1a1
// EL4 = -0.106777877
DATA consts<>+960(SB)/4, $0xbddaae5c
DATA consts<>+964(SB)/4, $0xbddaae5c
DATA consts<>+968(SB)/4, $0xbddaae5c
DATA consts<>+972(SB)/4, $0xbddaae5c
DATA consts<>+976(SB)/4, $0xbddaae5c
DATA consts<>+980(SB)/4, $0xbddaae5c
DATA consts<>+984(SB)/4, $0xbddaae5c
DATA consts<>+988(SB)/4, $0xbddaae5c
// EL5 = -0.634846687
DATA consts<>+992(SB)/4, $0xbf228550
DATA consts<>+996(SB)/4, $0xbf228550
DATA consts<>+1000(SB)/4, $0xbf228550
DATA consts<>+1004(SB)/4, $0xbf228550
DATA consts<>+1008(SB)/4, $0xbf228550
DATA consts<>+1012(SB)/4, $0xbf228550
DATA consts<>+1016(SB)/4, $0xbf228550
DATA consts<>+1020(SB)/4, $0xbf228550
// EL6 = -0.128717512
DATA consts<>+1024(SB)/4, $0xbe03ce86
DATA consts<>+1028(SB)/4, $0xbe03ce86
DATA consts<>+1032(SB)/4, $0xbe03ce86
DATA consts<>+1036(SB)/4, $0xbe03ce86
DATA consts<>+1040(SB)/4, $0xbe03ce86
DATA consts<>+1044(SB)/4, $0xbe03ce86
DATA consts<>+1048(SB)/4, $0xbe03ce86
DATA consts<>+1052(SB)/4, $0xbe03ce86
// NEGINF = -inf
DATA consts<>+1056(SB)/4, $0xff800000
DATA consts<>+1060(SB)/4, $0xff800000
DATA consts<>+1064(SB)/4, $0xff800000
DATA consts<>+1068(SB)/4, $0xff800000
DATA consts<>+1072(SB)/4, $0xff800000
DATA consts<>+1076(SB)/4, $0xff800000
DATA consts<>+1080(SB)/4, $0xff800000
DATA consts<>+1084(SB)/4, $0xff800000
GLOBL consts<>(SB), RODATA|NOPTR, $1088

#define ONE consts<>+0(SB)
#define HALF consts<>+32(SB)
#define ABS consts<>+64(SB)
#define SIGN consts<>+96(SB)
#define EXPLO consts<>+128(SB)
#define EXPHI consts<>+160(SB)
#define LOG2E consts<>+192(SB)
#define LN2HI consts<>+224(SB)
#define LN2LO consts<>+256(SB)
#define EP0 consts<>+288(SB)
#define EP1 consts<>+320(SB)
#define EP2 consts<>+352(SB)
#define EP3 consts<>+384(SB)
#define EP4 consts<>+416(SB)
#define EP5 consts<>+448(SB)
#define I127 consts<>+480(SB)
#define RSQRT2 consts<>+512(SB)
#define RSQRT2PI consts<>+544(SB)
#define ERFCLAMP consts<>+576(SB)
#define ERFTHR consts<>+608(SB)
#define ES0 consts<>+640(SB)
#define ES1 consts<>+672(SB)
#define ES2 consts<>+704(SB)
#define ES3 consts<>+736(SB)
#define ES4 consts<>+768(SB)
#define ES5 consts<>+800(SB)
#define EL0 consts<>+832(SB)
#define EL1 consts<>+864(SB)
#define EL2 consts<>+896(SB)
#define EL3 consts<>+928(SB)
#define EL4 consts<>+960(SB)
#define EL5 consts<>+992(SB)
#define EL6 consts<>+1024(SB)
#define NEGINF consts<>+1056(SB)

// EXP sets X = exp(X) (Cephes expf: Cody–Waite reduction by ln 2, degree-6
// polynomial, 2ⁿ by exponent arithmetic); T1, T2 are clobbered.
#define EXP(X, T1, T2) \
	VMAXPS       EXPLO, X, X; \
	VMINPS       EXPHI, X, X; \
	VMULPS       LOG2E, X, T1; \
	VROUNDPS     $0, T1, T1; \
	VFNMADD231PS LN2HI, T1, X; \
	VFNMADD231PS LN2LO, T1, X; \
	VMOVUPS      EP0, T2; \
	VFMADD213PS  EP1, X, T2; \
	VFMADD213PS  EP2, X, T2; \
	VFMADD213PS  EP3, X, T2; \
	VFMADD213PS  EP4, X, T2; \
	VFMADD213PS  EP5, X, T2; \
	VFMADD213PS  ONE, X, T2; \
	VFMADD213PS  ONE, X, T2; \
	VCVTPS2DQ    T1, T1; \
	VPADDD       I127, T1, T1; \
	VPSLLD       $23, T1, T1; \
	VMULPS       T1, T2, X

// ERF sets OUT = erf(Z) (erf32 in vecmath.go). On exit S holds min(|Z|,10)².
// T, S, A, B, C1, C2 are clobbered; Z is kept.
#define ERF(Z, OUT, T, S, A, B, C1, C2) \
	VANDPS      ABS, Z, T; \
	VMINPS      ERFCLAMP, T, T; \
	VMULPS      T, T, S; \
	VMOVUPS     ES0, A; \
	VFMADD213PS ES1, S, A; \
	VFMADD213PS ES2, S, A; \
	VFMADD213PS ES3, S, A; \
	VFMADD213PS ES4, S, A; \
	VFMADD213PS ES5, S, A; \
	VFMADD213PS Z, Z, A; \
	VMOVUPS     EL0, B; \
	VFMADD213PS EL1, T, B; \
	VMOVUPS     EL2, C1; \
	VFMADD213PS EL3, T, C1; \
	VFMADD213PS C1, S, B; \
	VFMADD213PS EL4, T, B; \
	VFMADD213PS EL5, T, B; \
	VFMADD213PS EL6, T, B; \
	VFMSUB213PS T, T, B; \
	EXP(B, C1, C2); \
	VMOVUPS     ONE, C1; \
	VSUBPS      B, C1, B; \
	VANDPS      SIGN, Z, C1; \
	VORPS       C1, B, B; \
	VCMPPS      $0x1e, ERFTHR, T, C1; \
	VBLENDVPS   C1, B, A, OUT

// func geluAVX2(out, x *float32, n int)
TEXT ·geluAVX2(SB), NOSPLIT, $0-24
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   geluDone

geluLoop:
	VMOVUPS     (SI), Y0
	VMULPS      RSQRT2, Y0, Y1
	ERF(Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8)
	VMULPS      HALF, Y0, Y0
	VFMADD213PS Y0, Y0, Y2
	VMOVUPS     Y2, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	DECQ        CX
	JNZ         geluLoop

geluDone:
	VZEROUPPER
	RET

// func geluGradAVX2(dx, dy, x *float32, n int)
TEXT ·geluGradAVX2(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ dy+8(FP), BX
	MOVQ x+16(FP), SI
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   gradDone
	VMOVUPS HALF, Y9

gradLoop:
	VMOVUPS     (SI), Y0
	VMULPS      RSQRT2, Y0, Y1
	ERF(Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8)
	VFMADD213PS Y9, Y9, Y2
	VXORPS      SIGN, Y4, Y4
	EXP(Y4, Y7, Y8)
	VMULPS      RSQRT2PI, Y4, Y4
	VFMADD231PS Y4, Y0, Y2
	VMOVUPS     (BX), Y5
	VMOVUPS     (DI), Y6
	VFMADD231PS Y5, Y2, Y6
	VMOVUPS     Y6, (DI)
	ADDQ        $32, SI
	ADDQ        $32, BX
	ADDQ        $32, DI
	DECQ        CX
	JNZ         gradLoop

gradDone:
	VZEROUPPER
	RET

// func geluFwdGradAVX2(out, grad, x *float32, n int)
// out = GELU(x) and grad = GELU'(x) from one erf: the same operations as
// geluAVX2 and geluGradAVX2, so the same bits. grad may be x.
TEXT ·geluFwdGradAVX2(SB), NOSPLIT, $0-32
	MOVQ    out+0(FP), DI
	MOVQ    grad+8(FP), BX
	MOVQ    x+16(FP), SI
	MOVQ    n+24(FP), CX
	SHRQ    $3, CX
	JZ      fgDone
	VMOVUPS HALF, Y9

fgLoop:
	VMOVUPS     (SI), Y0
	VMULPS      RSQRT2, Y0, Y1
	ERF(Y1, Y2, Y3, Y4, Y5, Y6, Y7, Y8)
	VMULPS      Y9, Y0, Y10
	VMOVAPS     Y2, Y11
	VFMADD213PS Y10, Y10, Y11
	VMOVUPS     Y11, (DI)
	VFMADD213PS Y9, Y9, Y2
	VXORPS      SIGN, Y4, Y4
	EXP(Y4, Y7, Y8)
	VMULPS      RSQRT2PI, Y4, Y4
	VFMADD231PS Y4, Y0, Y2
	VMOVUPS     Y2, (BX)
	ADDQ        $32, SI
	ADDQ        $32, BX
	ADDQ        $32, DI
	DECQ        CX
	JNZ         fgLoop

fgDone:
	VZEROUPPER
	RET

// func expSumAVX2(dst, src *float32, n int, shift float32) float32
TEXT ·expSumAVX2(SB), NOSPLIT, $0-36
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	VBROADCASTSS shift+24(FP), Y10
	VXORPS       Y11, Y11, Y11
	SHRQ         $3, CX
	JZ           expDone

expLoop:
	VMOVUPS (SI), Y0
	VSUBPS  Y10, Y0, Y0
	EXP(Y0, Y1, Y2)
	VMOVUPS Y0, (DI)
	VADDPS  Y0, Y11, Y11
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     expLoop

expDone:
	VEXTRACTF128 $1, Y11, X1
	VADDPS       X1, X11, X0
	VMOVHLPS     X0, X0, X1
	VADDPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VADDSS       X1, X0, X0
	VMOVSS       X0, ret+32(FP)
	VZEROUPPER
	RET

// func maxAVX2(x *float32, n int) float32
TEXT ·maxAVX2(SB), NOSPLIT, $0-20
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	VMOVUPS NEGINF, Y0
	SHRQ    $3, CX
	JZ      maxDone

maxLoop:
	VMAXPS (SI), Y0, Y0
	ADDQ   $32, SI
	DECQ   CX
	JNZ    maxLoop

maxDone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VMAXSS       X1, X0, X0
	VMOVSS       X0, ret+16(FP)
	VZEROUPPER
	RET

// func scaleAVX2(x *float32, n int, s float32)
TEXT ·scaleAVX2(SB), NOSPLIT, $0-20
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS s+16(FP), Y1
	SHRQ         $3, CX
	JZ           scaleDone

scaleLoop:
	VMULPS  (SI), Y1, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     scaleLoop

scaleDone:
	VZEROUPPER
	RET

// func adamwAVX2(data, grad, m, v *float32, n int, c *[8]float32)
// c = decay, β1, 1−β1, β2, 1−β2, step size, √(1−β2ᵗ), ε. The operations and
// their order are those of the pure-Go loop (no fused multiply-adds), so
// the results are bit-identical.
TEXT ·adamwAVX2(SB), NOSPLIT, $0-48
	MOVQ         data+0(FP), AX
	MOVQ         grad+8(FP), BX
	MOVQ         m+16(FP), CX
	MOVQ         v+24(FP), DX
	MOVQ         n+32(FP), SI
	MOVQ         c+40(FP), DI
	VBROADCASTSS 0(DI), Y8
	VBROADCASTSS 4(DI), Y9
	VBROADCASTSS 8(DI), Y10
	VBROADCASTSS 12(DI), Y11
	VBROADCASTSS 16(DI), Y12
	VBROADCASTSS 20(DI), Y15
	VBROADCASTSS 24(DI), Y13
	VBROADCASTSS 28(DI), Y14
	SHRQ         $3, SI
	JZ           adamDone

adamLoop:
	VMULPS  (AX), Y8, Y0
	VMOVUPS (BX), Y1
	VMULPS  (CX), Y9, Y2
	VMULPS  Y10, Y1, Y3
	VADDPS  Y3, Y2, Y2
	VMOVUPS Y2, (CX)
	VMULPS  (DX), Y11, Y4
	VMULPS  Y12, Y1, Y5
	VMULPS  Y1, Y5, Y5
	VADDPS  Y5, Y4, Y4
	VMOVUPS Y4, (DX)
	VSQRTPS Y4, Y6
	VDIVPS  Y13, Y6, Y6
	VADDPS  Y14, Y6, Y6
	VMULPS  Y15, Y2, Y7
	VDIVPS  Y6, Y7, Y7
	VSUBPS  Y7, Y0, Y0
	VMOVUPS Y0, (AX)
	ADDQ    $32, AX
	ADDQ    $32, BX
	ADDQ    $32, CX
	ADDQ    $32, DX
	DECQ    SI
	JNZ     adamLoop

adamDone:
	VZEROUPPER
	RET

// HSUM leaves the sum of the 8 lanes of Y in the low lane of X (X is Y's
// low half); T is clobbered.
#define HSUM(Y, X, T) \
	VEXTRACTF128 $1, Y, T; \
	VADDPS       T, X, X; \
	VMOVHLPS     X, X, T; \
	VADDPS       T, X, X; \
	VMOVSHDUP    X, T; \
	VADDSS       T, X, X

// func sumAVX2(x *float32, n int) float32
TEXT ·sumAVX2(SB), NOSPLIT, $0-20
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPS Y0, Y0, Y0
	SHRQ   $3, CX
	JZ     sumDone

sumLoop:
	VADDPS (SI), Y0, Y0
	ADDQ   $32, SI
	DECQ   CX
	JNZ    sumLoop

sumDone:
	HSUM(Y0, X0, X1)
	VMOVSS X0, ret+16(FP)
	VZEROUPPER
	RET

// func sumSqDevAVX2(x *float32, n int, m float32) float32
TEXT ·sumSqDevAVX2(SB), NOSPLIT, $0-28
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y2
	VXORPS       Y0, Y0, Y0
	SHRQ         $3, CX
	JZ           ssdDone

ssdLoop:
	VMOVUPS     (SI), Y1
	VSUBPS      Y2, Y1, Y1
	VFMADD231PS Y1, Y1, Y0
	ADDQ        $32, SI
	DECQ        CX
	JNZ         ssdLoop

ssdDone:
	HSUM(Y0, X0, X1)
	VMOVSS X0, ret+24(FP)
	VZEROUPPER
	RET

// func normAffineAVX2(out, x, w, b *float32, n int, m, s float32)
// out = (x−m)·s·w (+ b when b is not nil).
TEXT ·normAffineAVX2(SB), NOSPLIT, $0-48
	MOVQ         out+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         w+16(FP), BX
	MOVQ         b+24(FP), DX
	MOVQ         n+32(FP), CX
	VBROADCASTSS m+40(FP), Y4
	VBROADCASTSS s+44(FP), Y5
	SHRQ         $3, CX
	JZ           naDone
	TESTQ        DX, DX
	JZ           naNoBias

naLoop:
	VMOVUPS (SI), Y0
	VSUBPS  Y4, Y0, Y0
	VMULPS  Y5, Y0, Y0
	VMULPS  (BX), Y0, Y0
	VADDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, BX
	ADDQ    $32, DX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     naLoop
	JMP     naDone

naNoBias:
	VMOVUPS (SI), Y0
	VSUBPS  Y4, Y0, Y0
	VMULPS  Y5, Y0, Y0
	VMULPS  (BX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, BX
	ADDQ    $32, DI
	DECQ    CX
	JNZ     naNoBias

naDone:
	VZEROUPPER
	RET

// func lnGradSumsAVX2(dy, w, x *float32, n int, m, s float32) (s1, s2 float32)
// s1 = Σ dy·w, s2 = Σ dy·w·(x−m)·s.
TEXT ·lnGradSumsAVX2(SB), NOSPLIT, $0-48
	MOVQ         dy+0(FP), DI
	MOVQ         w+8(FP), BX
	MOVQ         x+16(FP), SI
	MOVQ         n+24(FP), CX
	VBROADCASTSS m+32(FP), Y4
	VBROADCASTSS s+36(FP), Y5
	VXORPS       Y0, Y0, Y0
	VXORPS       Y1, Y1, Y1
	SHRQ         $3, CX
	JZ           gsDone

gsLoop:
	VMOVUPS     (DI), Y2
	VMULPS      (BX), Y2, Y2
	VADDPS      Y2, Y0, Y0
	VMOVUPS     (SI), Y3
	VSUBPS      Y4, Y3, Y3
	VMULPS      Y5, Y3, Y3
	VFMADD231PS Y3, Y2, Y1
	ADDQ        $32, DI
	ADDQ        $32, BX
	ADDQ        $32, SI
	DECQ        CX
	JNZ         gsLoop

gsDone:
	HSUM(Y0, X0, X6)
	HSUM(Y1, X1, X6)
	VMOVSS X0, s1+40(FP)
	VMOVSS X1, s2+44(FP)
	VZEROUPPER
	RET

// func lnGradApplyAVX2(di, dw, db, dy, w, x *float32, n int, p *[4]float32)
// p = m, s, c1, c2. norm = (x−m)·s; dw += norm·dy; db += dy (db may be nil);
// di += (dy·w − c1 − norm·c2)·s.
TEXT ·lnGradApplyAVX2(SB), NOSPLIT, $0-64
	MOVQ         di+0(FP), DI
	MOVQ         dw+8(FP), R8
	MOVQ         db+16(FP), R9
	MOVQ         dy+24(FP), DX
	MOVQ         w+32(FP), BX
	MOVQ         x+40(FP), SI
	MOVQ         n+48(FP), CX
	MOVQ         p+56(FP), AX
	VBROADCASTSS 0(AX), Y8
	VBROADCASTSS 4(AX), Y9
	VBROADCASTSS 8(AX), Y10
	VBROADCASTSS 12(AX), Y11
	SHRQ         $3, CX
	JZ           gaDone

gaLoop:
	VMOVUPS      (SI), Y0
	VSUBPS       Y8, Y0, Y0
	VMULPS       Y9, Y0, Y0
	VMOVUPS      (DX), Y1
	VMOVUPS      (R8), Y2
	VFMADD231PS  Y1, Y0, Y2
	VMOVUPS      Y2, (R8)
	TESTQ        R9, R9
	JZ           gaNoBias
	VADDPS       (R9), Y1, Y3
	VMOVUPS      Y3, (R9)
	ADDQ         $32, R9

gaNoBias:
	VMULPS       (BX), Y1, Y1
	VSUBPS       Y10, Y1, Y1
	VFNMADD231PS Y11, Y0, Y1
	VMOVUPS      (DI), Y2
	VFMADD231PS  Y9, Y1, Y2
	VMOVUPS      Y2, (DI)
	ADDQ         $32, SI
	ADDQ         $32, DX
	ADDQ         $32, R8
	ADDQ         $32, BX
	ADDQ         $32, DI
	DECQ         CX
	JNZ          gaLoop

gaDone:
	VZEROUPPER
	RET

// func sumSq64AVX2(x *float32, n int) float64
// Σ x² in float64 (4 float64 lanes × 2 accumulators).
TEXT ·sumSq64AVX2(SB), NOSPLIT, $0-24
	MOVQ   x+0(FP), SI
	MOVQ   n+8(FP), CX
	VXORPD Y0, Y0, Y0
	VXORPD Y1, Y1, Y1
	SHRQ   $3, CX
	JZ     ss64Done

ss64Loop:
	VCVTPS2PD   (SI), Y2
	VCVTPS2PD   16(SI), Y3
	VFMADD231PD Y2, Y2, Y0
	VFMADD231PD Y3, Y3, Y1
	ADDQ        $32, SI
	DECQ        CX
	JNZ         ss64Loop

ss64Done:
	VADDPD       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPD       X1, X0, X0
	VUNPCKHPD    X0, X0, X1
	VADDSD       X1, X0, X0
	VMOVSD       X0, ret+16(FP)
	VZEROUPPER
	RET

// AVX-512 versions of the GELU kernels, 16 lanes. Same formulas as the
// AVX2 ones, with embedded broadcasts of the constants, mask registers for
// the erf branch choice and VSCALEFPS for 2ⁿ.

// EXP512 sets X = exp(X); T1, T2 are clobbered.
#define EXP512(X, T1, T2) \
	VMAXPS.BCST       EXPLO, X, X; \
	VMINPS.BCST       EXPHI, X, X; \
	VMULPS.BCST       LOG2E, X, T1; \
	VRNDSCALEPS       $0, T1, T1; \
	VFNMADD231PS.BCST LN2HI, T1, X; \
	VFNMADD231PS.BCST LN2LO, T1, X; \
	VBROADCASTSS      EP0, T2; \
	VFMADD213PS.BCST  EP1, X, T2; \
	VFMADD213PS.BCST  EP2, X, T2; \
	VFMADD213PS.BCST  EP3, X, T2; \
	VFMADD213PS.BCST  EP4, X, T2; \
	VFMADD213PS.BCST  EP5, X, T2; \
	VFMADD213PS.BCST  ONE, X, T2; \
	VFMADD213PS.BCST  ONE, X, T2; \
	VSCALEFPS         T1, T2, X

// ERF512 sets OUT = erf(Z); on exit S holds min(|Z|,10)². T, S, A, B, C1,
// C2 and K1 are clobbered.
#define ERF512(Z, OUT, T, S, A, B, C1, C2) \
	VPANDD.BCST      ABS, Z, T; \
	VMINPS.BCST      ERFCLAMP, T, T; \
	VMULPS           T, T, S; \
	VBROADCASTSS     ES0, A; \
	VFMADD213PS.BCST ES1, S, A; \
	VFMADD213PS.BCST ES2, S, A; \
	VFMADD213PS.BCST ES3, S, A; \
	VFMADD213PS.BCST ES4, S, A; \
	VFMADD213PS.BCST ES5, S, A; \
	VFMADD213PS      Z, Z, A; \
	VBROADCASTSS     EL0, B; \
	VFMADD213PS.BCST EL1, T, B; \
	VBROADCASTSS     EL2, C1; \
	VFMADD213PS.BCST EL3, T, C1; \
	VFMADD213PS      C1, S, B; \
	VFMADD213PS.BCST EL4, T, B; \
	VFMADD213PS.BCST EL5, T, B; \
	VFMADD213PS.BCST EL6, T, B; \
	VFMSUB213PS      T, T, B; \
	EXP512(B, C1, C2); \
	VBROADCASTSS     ONE, C1; \
	VSUBPS           B, C1, B; \
	VPANDD.BCST      SIGN, Z, C1; \
	VPORD            C1, B, B; \
	VCMPPS.BCST      $0x1e, ERFTHR, T, K1; \
	VBLENDMPS        B, A, K1, OUT

// func geluAVX512(out, x *float32, n int)
TEXT ·geluAVX512(SB), NOSPLIT, $0-24
	MOVQ out+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   gelu512Done

gelu512Loop:
	VMOVUPS          (SI), Z0
	VMULPS.BCST      RSQRT2, Z0, Z1
	ERF512(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8)
	VMULPS.BCST      HALF, Z0, Z0
	VFMADD213PS      Z0, Z0, Z2
	VMOVUPS          Z2, (DI)
	ADDQ             $64, SI
	ADDQ             $64, DI
	DECQ             CX
	JNZ              gelu512Loop

gelu512Done:
	VZEROUPPER
	RET

// func geluGradAVX512(dx, dy, x *float32, n int)
TEXT ·geluGradAVX512(SB), NOSPLIT, $0-32
	MOVQ         dx+0(FP), DI
	MOVQ         dy+8(FP), BX
	MOVQ         x+16(FP), SI
	MOVQ         n+24(FP), CX
	SHRQ         $4, CX
	JZ           grad512Done
	VBROADCASTSS HALF, Z9

grad512Loop:
	VMOVUPS          (SI), Z0
	VMULPS.BCST      RSQRT2, Z0, Z1
	ERF512(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8)
	VFMADD213PS      Z9, Z9, Z2
	VPXORD.BCST      SIGN, Z4, Z4
	EXP512(Z4, Z7, Z8)
	VMULPS.BCST      RSQRT2PI, Z4, Z4
	VFMADD231PS      Z4, Z0, Z2
	VMOVUPS          (DI), Z6
	VFMADD231PS      (BX), Z2, Z6
	VMOVUPS          Z6, (DI)
	ADDQ             $64, SI
	ADDQ             $64, BX
	ADDQ             $64, DI
	DECQ             CX
	JNZ              grad512Loop

grad512Done:
	VZEROUPPER
	RET

// func geluFwdGradAVX512(out, grad, x *float32, n int)
// geluFwdGradAVX2 with 16 lanes: the same operations as geluAVX512 and
// geluGradAVX512. grad may be x.
TEXT ·geluFwdGradAVX512(SB), NOSPLIT, $0-32
	MOVQ         out+0(FP), DI
	MOVQ         grad+8(FP), BX
	MOVQ         x+16(FP), SI
	MOVQ         n+24(FP), CX
	SHRQ         $4, CX
	JZ           fg512Done
	VBROADCASTSS HALF, Z9

fg512Loop:
	VMOVUPS          (SI), Z0
	VMULPS.BCST      RSQRT2, Z0, Z1
	ERF512(Z1, Z2, Z3, Z4, Z5, Z6, Z7, Z8)
	VMULPS           Z9, Z0, Z10
	VMOVAPS          Z2, Z11
	VFMADD213PS      Z10, Z10, Z11
	VMOVUPS          Z11, (DI)
	VFMADD213PS      Z9, Z9, Z2
	VPXORD.BCST      SIGN, Z4, Z4
	EXP512(Z4, Z7, Z8)
	VMULPS.BCST      RSQRT2PI, Z4, Z4
	VFMADD231PS      Z4, Z0, Z2
	VMOVUPS          Z2, (BX)
	ADDQ             $64, SI
	ADDQ             $64, BX
	ADDQ             $64, DI
	DECQ             CX
	JNZ              fg512Loop

fg512Done:
	VZEROUPPER
	RET

// func mulAVX2(out, a, b *float32, n int)
// out = a ⊙ b, 32 elements per iteration then 8.
TEXT ·mulAVX2(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX

mul32:
	CMPQ    CX, $32
	JLT     mul8
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VMULPS  (DX), Y0, Y0
	VMULPS  32(DX), Y1, Y1
	VMULPS  64(DX), Y2, Y2
	VMULPS  96(DX), Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, SI
	ADDQ    $128, DX
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     mul32

mul8:
	CMPQ    CX, $8
	JLT     mulDone
	VMOVUPS (SI), Y0
	VMULPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     mul8

mulDone:
	VZEROUPPER
	RET

// func addAVX2(out, a, b *float32, n int)
// out = a + b, 32 elements per iteration then 8.
TEXT ·addAVX2(SB), NOSPLIT, $0-32
	MOVQ out+0(FP), DI
	MOVQ a+8(FP), SI
	MOVQ b+16(FP), DX
	MOVQ n+24(FP), CX

add32:
	CMPQ    CX, $32
	JLT     add8
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS 64(SI), Y2
	VMOVUPS 96(SI), Y3
	VADDPS  (DX), Y0, Y0
	VADDPS  32(DX), Y1, Y1
	VADDPS  64(DX), Y2, Y2
	VADDPS  96(DX), Y3, Y3
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	VMOVUPS Y2, 64(DI)
	VMOVUPS Y3, 96(DI)
	ADDQ    $128, SI
	ADDQ    $128, DX
	ADDQ    $128, DI
	SUBQ    $32, CX
	JMP     add32

add8:
	CMPQ    CX, $8
	JLT     addDone
	VMOVUPS (SI), Y0
	VADDPS  (DX), Y0, Y0
	VMOVUPS Y0, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DX
	ADDQ    $32, DI
	SUBQ    $8, CX
	JMP     add8

addDone:
	VZEROUPPER
	RET

// func smallGemmAVX2(c *float32, ldc int, a *float32, am, ak int, b *float32, ldb, m, k, n int, alpha float32, beta int)
// For i < m and the first n&^7 columns: C[i,:] = beta·C[i,:] + alpha·Σ_p
// A(i,p)·B[p,:] with A(i,p) = a[i·am + p·ak] (so A may be transposed), B
// and C row-major (strides ldb, ldc), beta 0 or 1, k ≥ 1. No packing: for
// the small products of attention, whose operands sit in L1.
TEXT ·smallGemmAVX2(SB), NOSPLIT, $0-96
	MOVQ         m+56(FP), BX
	TESTQ        BX, BX
	JZ           sgDone
	MOVQ         c+0(FP), DI
	MOVQ         a+16(FP), SI
	MOVQ         ak+32(FP), R10
	SHLQ         $2, R10
	MOVQ         ldb+48(FP), R11
	SHLQ         $2, R11
	MOVQ         beta+88(FP), R13
	VBROADCASTSS alpha+80(FP), Y5

sgRow:
	XORQ AX, AX
	MOVQ n+72(FP), R12

sgChunk32:
	CMPQ   R12, $32
	JLT    sgChunk8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   SI, R8
	MOVQ   b+40(FP), R9
	ADDQ   AX, R9
	MOVQ   k+64(FP), CX

sgK32:
	VBROADCASTSS (R8), Y4
	VFMADD231PS  (R9), Y4, Y0
	VFMADD231PS  32(R9), Y4, Y1
	VFMADD231PS  64(R9), Y4, Y2
	VFMADD231PS  96(R9), Y4, Y3
	ADDQ         R10, R8
	ADDQ         R11, R9
	DECQ         CX
	JNZ          sgK32
	TESTQ        R13, R13
	JZ           sgSet32
	VFMADD213PS  (DI)(AX*1), Y5, Y0
	VFMADD213PS  32(DI)(AX*1), Y5, Y1
	VFMADD213PS  64(DI)(AX*1), Y5, Y2
	VFMADD213PS  96(DI)(AX*1), Y5, Y3
	JMP          sgStore32

sgSet32:
	VMULPS Y5, Y0, Y0
	VMULPS Y5, Y1, Y1
	VMULPS Y5, Y2, Y2
	VMULPS Y5, Y3, Y3

sgStore32:
	VMOVUPS Y0, (DI)(AX*1)
	VMOVUPS Y1, 32(DI)(AX*1)
	VMOVUPS Y2, 64(DI)(AX*1)
	VMOVUPS Y3, 96(DI)(AX*1)
	ADDQ    $128, AX
	SUBQ    $32, R12
	JMP     sgChunk32

sgChunk8:
	CMPQ   R12, $8
	JLT    sgRowEnd
	VXORPS Y0, Y0, Y0
	MOVQ   SI, R8
	MOVQ   b+40(FP), R9
	ADDQ   AX, R9
	MOVQ   k+64(FP), CX

sgK8:
	VBROADCASTSS (R8), Y4
	VFMADD231PS  (R9), Y4, Y0
	ADDQ         R10, R8
	ADDQ         R11, R9
	DECQ         CX
	JNZ          sgK8
	TESTQ        R13, R13
	JZ           sgSet8
	VFMADD213PS  (DI)(AX*1), Y5, Y0
	JMP          sgStore8

sgSet8:
	VMULPS Y5, Y0, Y0

sgStore8:
	VMOVUPS Y0, (DI)(AX*1)
	ADDQ    $32, AX
	SUBQ    $8, R12
	JMP     sgChunk8

sgRowEnd:
	MOVQ am+24(FP), R8
	SHLQ $2, R8
	ADDQ R8, SI
	MOVQ ldc+8(FP), R8
	SHLQ $2, R8
	ADDQ R8, DI
	DECQ BX
	JNZ  sgRow

sgDone:
	VZEROUPPER
	RET

// func smallGemm2x32AVX2(c *float32, ldc int, a *float32, am, ak int, b *float32, ldb, m2, k, n int, alpha float32, beta int)
// smallGemmAVX2 for 2·m2 rows and n (a multiple of 32) columns, two rows at
// a time: each loaded row of B serves both rows of A, and the eight
// independent accumulators keep both FMA pipes busy (four chains cannot,
// with a 4-cycle latency). Same operations per element, so the same bits.
TEXT ·smallGemm2x32AVX2(SB), NOSPLIT, $0-96
	MOVQ         m2+56(FP), BX
	TESTQ        BX, BX
	JZ           s2Done
	MOVQ         c+0(FP), DI
	MOVQ         a+16(FP), SI
	MOVQ         am+24(FP), R14
	SHLQ         $2, R14
	MOVQ         ak+32(FP), R10
	SHLQ         $2, R10
	MOVQ         ldb+48(FP), R11
	SHLQ         $2, R11
	MOVQ         ldc+8(FP), DX
	SHLQ         $2, DX
	MOVQ         beta+88(FP), R13
	VBROADCASTSS alpha+80(FP), Y5

s2Row:
	XORQ AX, AX
	MOVQ n+72(FP), R12

s2Chunk:
	CMPQ   R12, $32
	JLT    s2RowEnd
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	MOVQ   SI, R8
	MOVQ   b+40(FP), R9
	ADDQ   AX, R9
	MOVQ   k+64(FP), CX

s2K:
	VMOVUPS      (R9), Y11
	VMOVUPS      32(R9), Y12
	VMOVUPS      64(R9), Y13
	VMOVUPS      96(R9), Y14
	VBROADCASTSS (R8), Y4
	VBROADCASTSS (R8)(R14*1), Y10
	VFMADD231PS  Y11, Y4, Y0
	VFMADD231PS  Y12, Y4, Y1
	VFMADD231PS  Y13, Y4, Y2
	VFMADD231PS  Y14, Y4, Y3
	VFMADD231PS  Y11, Y10, Y6
	VFMADD231PS  Y12, Y10, Y7
	VFMADD231PS  Y13, Y10, Y8
	VFMADD231PS  Y14, Y10, Y9
	ADDQ         R10, R8
	ADDQ         R11, R9
	DECQ         CX
	JNZ          s2K
	LEAQ         (DI)(DX*1), R8
	TESTQ        R13, R13
	JZ           s2Set
	VFMADD213PS  (DI)(AX*1), Y5, Y0
	VFMADD213PS  32(DI)(AX*1), Y5, Y1
	VFMADD213PS  64(DI)(AX*1), Y5, Y2
	VFMADD213PS  96(DI)(AX*1), Y5, Y3
	VFMADD213PS  (R8)(AX*1), Y5, Y6
	VFMADD213PS  32(R8)(AX*1), Y5, Y7
	VFMADD213PS  64(R8)(AX*1), Y5, Y8
	VFMADD213PS  96(R8)(AX*1), Y5, Y9
	JMP          s2Store

s2Set:
	VMULPS Y5, Y0, Y0
	VMULPS Y5, Y1, Y1
	VMULPS Y5, Y2, Y2
	VMULPS Y5, Y3, Y3
	VMULPS Y5, Y6, Y6
	VMULPS Y5, Y7, Y7
	VMULPS Y5, Y8, Y8
	VMULPS Y5, Y9, Y9

s2Store:
	VMOVUPS Y0, (DI)(AX*1)
	VMOVUPS Y1, 32(DI)(AX*1)
	VMOVUPS Y2, 64(DI)(AX*1)
	VMOVUPS Y3, 96(DI)(AX*1)
	VMOVUPS Y6, (R8)(AX*1)
	VMOVUPS Y7, 32(R8)(AX*1)
	VMOVUPS Y8, 64(R8)(AX*1)
	VMOVUPS Y9, 96(R8)(AX*1)
	ADDQ    $128, AX
	SUBQ    $32, R12
	JMP     s2Chunk

s2RowEnd:
	LEAQ (SI)(R14*2), SI
	LEAQ (DI)(DX*2), DI
	DECQ BX
	JNZ  s2Row

s2Done:
	VZEROUPPER
	RET

// func transposeAVX2(dst, src *float32, ldb, kc, nr int)
// dst[p*nr+c] = src[c*ldb+p] for c < nr, p < kc (both multiples of 8,
// > 0) by 8×8 in-register transposes (the same code as the GEMM's
// kernels.packBTT).
TEXT ·transposeAVX2(SB), NOSPLIT, $0-40
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

trGroup:
	MOVQ SI, R8
	MOVQ DI, DX
	MOVQ CX, R12

trBlock:
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
	JNZ  trBlock

	LEAQ (SI)(BX*8), SI
	ADDQ $32, DI
	DECQ R11
	JNZ  trGroup
	VZEROUPPER
	RET

// func softmaxGradAVX2(p, d *float32, n int)
// d = p ⊙ (d − Σ p⊙d) over n (a multiple of 8, > 0) elements: the softmax
// backward of one attention row.
TEXT ·softmaxGradAVX2(SB), NOSPLIT, $0-24
	MOVQ   p+0(FP), SI
	MOVQ   d+8(FP), DI
	MOVQ   n+16(FP), CX
	VXORPS Y0, Y0, Y0
	XORQ   AX, AX

sgdDot:
	VMOVUPS     (SI)(AX*4), Y1
	VFMADD231PS (DI)(AX*4), Y1, Y0
	ADDQ        $8, AX
	CMPQ        AX, CX
	JLT         sgdDot
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VBROADCASTSS X0, Y2
	XORQ         AX, AX

sgdApply:
	VMOVUPS (DI)(AX*4), Y3
	VSUBPS  Y2, Y3, Y3
	VMULPS  (SI)(AX*4), Y3, Y3
	VMOVUPS Y3, (DI)(AX*4)
	ADDQ    $8, AX
	CMPQ    AX, CX
	JLT     sgdApply
	VZEROUPPER
	RET

// func softmaxAVX2(x *float32, n int)
// x = softmax(x) over n (a multiple of 8, > 0) elements in one call: the
// same operations in the same order as Max, ExpSum and Scale(1/sum), so
// the same bits, without three calls per attention row.
TEXT ·softmaxAVX2(SB), NOSPLIT, $0-16
	MOVQ    x+0(FP), SI
	MOVQ    n+8(FP), CX
	SHRQ    $3, CX
	VMOVUPS NEGINF, Y0
	MOVQ    SI, DI
	MOVQ    CX, DX

smMax:
	VMAXPS (DI), Y0, Y0
	ADDQ   $32, DI
	DECQ   DX
	JNZ    smMax
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VMOVHLPS     X0, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VMAXSS       X1, X0, X0
	VBROADCASTSS X0, Y10
	VXORPS       Y11, Y11, Y11
	MOVQ         SI, DI
	MOVQ         CX, DX

smExp:
	VMOVUPS (DI), Y0
	VSUBPS  Y10, Y0, Y0
	EXP(Y0, Y1, Y2)
	VMOVUPS Y0, (DI)
	VADDPS  Y0, Y11, Y11
	ADDQ    $32, DI
	DECQ    DX
	JNZ     smExp
	VEXTRACTF128 $1, Y11, X1
	VADDPS       X1, X11, X0
	VMOVHLPS     X0, X0, X1
	VADDPS       X1, X0, X0
	VMOVSHDUP    X0, X1
	VADDSS       X1, X0, X0
	MOVL         $0x3f800000, AX
	VMOVD        AX, X3
	VDIVSS       X0, X3, X3
	VBROADCASTSS X3, Y4

smScale:
	VMULPS  (SI), Y4, Y0
	VMOVUPS Y0, (SI)
	ADDQ    $32, SI
	DECQ    CX
	JNZ     smScale
	VZEROUPPER
	RET

// func smallGemm8AVX512(c *float32, ldc int, a *float32, am, ak int, b *float32, ldb, m8, k, n int, alpha float32, beta int)
// smallGemmAVX2 for 8·m8 rows and n (a multiple of 16) columns, eight rows
// at a time with zmm registers: 32-column chunks (16 accumulators), then a
// 16-column one. A(i,p) comes in by embedded broadcast, so each loaded row
// of B serves eight rows of A. Same operations per element as the AVX2
// kernels (one FMA per p, in order), so the same bits.
TEXT ·smallGemm8AVX512(SB), NOSPLIT, $0-96
	MOVQ         m8+56(FP), BX
	TESTQ        BX, BX
	JZ           s8Done
	MOVQ         c+0(FP), DI
	MOVQ         a+16(FP), SI
	MOVQ         am+24(FP), R14
	SHLQ         $2, R14
	LEAQ         (R14)(R14*2), R15
	MOVQ         ak+32(FP), R10
	SHLQ         $2, R10
	MOVQ         ldb+48(FP), R11
	SHLQ         $2, R11
	MOVQ         ldc+8(FP), DX
	SHLQ         $2, DX
	VBROADCASTSS alpha+80(FP), Z31

s8Row:
	XORQ AX, AX
	MOVQ n+72(FP), R13

s8Chunk32:
	CMPQ   R13, $32
	JLT    s8Chunk16
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z2, Z2, Z2
	VPXORD Z3, Z3, Z3
	VPXORD Z4, Z4, Z4
	VPXORD Z5, Z5, Z5
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	VPXORD Z8, Z8, Z8
	VPXORD Z9, Z9, Z9
	VPXORD Z10, Z10, Z10
	VPXORD Z11, Z11, Z11
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13
	VPXORD Z14, Z14, Z14
	VPXORD Z15, Z15, Z15
	MOVQ   SI, R8
	LEAQ   (SI)(R14*4), R12
	MOVQ   b+40(FP), R9
	ADDQ   AX, R9
	MOVQ   k+64(FP), CX

s8K32:
	VMOVUPS           (R9), Z16
	VMOVUPS           64(R9), Z17
	VFMADD231PS.BCST  (R8), Z16, Z0
	VFMADD231PS.BCST  (R8), Z17, Z1
	VFMADD231PS.BCST  (R8)(R14*1), Z16, Z2
	VFMADD231PS.BCST  (R8)(R14*1), Z17, Z3
	VFMADD231PS.BCST  (R8)(R14*2), Z16, Z4
	VFMADD231PS.BCST  (R8)(R14*2), Z17, Z5
	VFMADD231PS.BCST  (R8)(R15*1), Z16, Z6
	VFMADD231PS.BCST  (R8)(R15*1), Z17, Z7
	VFMADD231PS.BCST  (R12), Z16, Z8
	VFMADD231PS.BCST  (R12), Z17, Z9
	VFMADD231PS.BCST  (R12)(R14*1), Z16, Z10
	VFMADD231PS.BCST  (R12)(R14*1), Z17, Z11
	VFMADD231PS.BCST  (R12)(R14*2), Z16, Z12
	VFMADD231PS.BCST  (R12)(R14*2), Z17, Z13
	VFMADD231PS.BCST  (R12)(R15*1), Z16, Z14
	VFMADD231PS.BCST  (R12)(R15*1), Z17, Z15
	ADDQ              R10, R8
	ADDQ              R10, R12
	ADDQ              R11, R9
	DECQ              CX
	JNZ               s8K32
	LEAQ              (DI)(AX*1), R8
	CMPQ              beta+88(FP), $0
	JEQ               s8Set32
	VFMADD213PS       (R8), Z31, Z0
	VFMADD213PS       64(R8), Z31, Z1
	VMOVUPS           Z0, (R8)
	VMOVUPS           Z1, 64(R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z2
	VFMADD213PS       64(R8), Z31, Z3
	VMOVUPS           Z2, (R8)
	VMOVUPS           Z3, 64(R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z4
	VFMADD213PS       64(R8), Z31, Z5
	VMOVUPS           Z4, (R8)
	VMOVUPS           Z5, 64(R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z6
	VFMADD213PS       64(R8), Z31, Z7
	VMOVUPS           Z6, (R8)
	VMOVUPS           Z7, 64(R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z8
	VFMADD213PS       64(R8), Z31, Z9
	VMOVUPS           Z8, (R8)
	VMOVUPS           Z9, 64(R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z10
	VFMADD213PS       64(R8), Z31, Z11
	VMOVUPS           Z10, (R8)
	VMOVUPS           Z11, 64(R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z12
	VFMADD213PS       64(R8), Z31, Z13
	VMOVUPS           Z12, (R8)
	VMOVUPS           Z13, 64(R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z14
	VFMADD213PS       64(R8), Z31, Z15
	VMOVUPS           Z14, (R8)
	VMOVUPS           Z15, 64(R8)
	JMP               s8Next32

s8Set32:
	VMULPS  Z31, Z0, Z0
	VMULPS  Z31, Z1, Z1
	VMOVUPS Z0, (R8)
	VMOVUPS Z1, 64(R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z2, Z2
	VMULPS  Z31, Z3, Z3
	VMOVUPS Z2, (R8)
	VMOVUPS Z3, 64(R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z4, Z4
	VMULPS  Z31, Z5, Z5
	VMOVUPS Z4, (R8)
	VMOVUPS Z5, 64(R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z6, Z6
	VMULPS  Z31, Z7, Z7
	VMOVUPS Z6, (R8)
	VMOVUPS Z7, 64(R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z8, Z8
	VMULPS  Z31, Z9, Z9
	VMOVUPS Z8, (R8)
	VMOVUPS Z9, 64(R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z10, Z10
	VMULPS  Z31, Z11, Z11
	VMOVUPS Z10, (R8)
	VMOVUPS Z11, 64(R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z12, Z12
	VMULPS  Z31, Z13, Z13
	VMOVUPS Z12, (R8)
	VMOVUPS Z13, 64(R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z14, Z14
	VMULPS  Z31, Z15, Z15
	VMOVUPS Z14, (R8)
	VMOVUPS Z15, 64(R8)

s8Next32:
	ADDQ $128, AX
	SUBQ $32, R13
	JMP  s8Chunk32

s8Chunk16:
	CMPQ   R13, $16
	JLT    s8RowEnd
	VPXORD Z0, Z0, Z0
	VPXORD Z2, Z2, Z2
	VPXORD Z4, Z4, Z4
	VPXORD Z6, Z6, Z6
	VPXORD Z8, Z8, Z8
	VPXORD Z10, Z10, Z10
	VPXORD Z12, Z12, Z12
	VPXORD Z14, Z14, Z14
	MOVQ   SI, R8
	LEAQ   (SI)(R14*4), R12
	MOVQ   b+40(FP), R9
	ADDQ   AX, R9
	MOVQ   k+64(FP), CX

s8K16:
	VMOVUPS           (R9), Z16
	VFMADD231PS.BCST  (R8), Z16, Z0
	VFMADD231PS.BCST  (R8)(R14*1), Z16, Z2
	VFMADD231PS.BCST  (R8)(R14*2), Z16, Z4
	VFMADD231PS.BCST  (R8)(R15*1), Z16, Z6
	VFMADD231PS.BCST  (R12), Z16, Z8
	VFMADD231PS.BCST  (R12)(R14*1), Z16, Z10
	VFMADD231PS.BCST  (R12)(R14*2), Z16, Z12
	VFMADD231PS.BCST  (R12)(R15*1), Z16, Z14
	ADDQ              R10, R8
	ADDQ              R10, R12
	ADDQ              R11, R9
	DECQ              CX
	JNZ               s8K16
	LEAQ              (DI)(AX*1), R8
	CMPQ              beta+88(FP), $0
	JEQ               s8Set16
	VFMADD213PS       (R8), Z31, Z0
	VMOVUPS           Z0, (R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z2
	VMOVUPS           Z2, (R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z4
	VMOVUPS           Z4, (R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z6
	VMOVUPS           Z6, (R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z8
	VMOVUPS           Z8, (R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z10
	VMOVUPS           Z10, (R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z12
	VMOVUPS           Z12, (R8)
	ADDQ              DX, R8
	VFMADD213PS       (R8), Z31, Z14
	VMOVUPS           Z14, (R8)
	JMP               s8Next16

s8Set16:
	VMULPS  Z31, Z0, Z0
	VMOVUPS Z0, (R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z2, Z2
	VMOVUPS Z2, (R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z4, Z4
	VMOVUPS Z4, (R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z6, Z6
	VMOVUPS Z6, (R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z8, Z8
	VMOVUPS Z8, (R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z10, Z10
	VMOVUPS Z10, (R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z12, Z12
	VMOVUPS Z12, (R8)
	ADDQ    DX, R8
	VMULPS  Z31, Z14, Z14
	VMOVUPS Z14, (R8)

s8Next16:
	ADDQ $64, AX
	SUBQ $16, R13

s8RowEnd:
	LEAQ (SI)(R14*8), SI
	LEAQ (DI)(DX*8), DI
	DECQ BX
	JNZ  s8Row

s8Done:
	VZEROUPPER
	RET

// HSUM512 leaves the sum of the 16 lanes of Z in the low lane of X (Z's
// low quarter); Y is Z's low half, T a scratch ymm/xmm pair.
#define HSUM512(Z, Y, X, TY, TX) \
	VEXTRACTF64X4 $1, Z, TY; \
	VADDPS        TY, Y, Y; \
	HSUM(Y, X, TX)

// func lnForwardAVX512(out, mean, rstd, x, w, b *float32, rows, c int, eps float32)
// LayerNorm forward of rows rows of c floats (c a multiple of 16): per row
// m = Σx/c, s = 1/√(Σ(x−m)²/c + eps), out = (x−m)·s·w (+ b unless b is
// nil), mean = m, rstd = s. Two accumulators per sum; the same element
// operations as normAffineAVX2.
TEXT ·lnForwardAVX512(SB), NOSPLIT, $0-68
	MOVQ       out+0(FP), DI
	MOVQ       mean+8(FP), R8
	MOVQ       rstd+16(FP), R9
	MOVQ       x+24(FP), SI
	MOVQ       w+32(FP), BX
	MOVQ       b+40(FP), DX
	MOVQ       rows+48(FP), R10
	MOVQ       c+56(FP), R11
	VMOVSS     eps+64(FP), X15
	VCVTSI2SSQ R11, X14, X14
	MOVL       $0x3f800000, AX
	VMOVD      AX, X13
	TESTQ      R10, R10
	JZ         lnfDone

lnfRow:
	// m = Σx / c
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	MOVQ   SI, AX
	MOVQ   R11, CX
	SHRQ   $4, CX

lnfSum:
	VADDPS (AX), Z0, Z0
	ADDQ   $64, AX
	DECQ   CX
	JZ     lnfSumDone
	VADDPS (AX), Z1, Z1
	ADDQ   $64, AX
	DECQ   CX
	JNZ    lnfSum

lnfSumDone:
	VADDPS       Z1, Z0, Z0
	HSUM512(Z0, Y0, X0, Y1, X1)
	VDIVSS       X14, X0, X0
	VMOVSS       X0, (R8)
	VBROADCASTSS X0, Z2

	// s = 1/√(Σ(x−m)²/c + eps)
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	MOVQ   SI, AX
	MOVQ   R11, CX
	SHRQ   $4, CX

lnfVar:
	VMOVUPS     (AX), Z3
	VSUBPS      Z2, Z3, Z3
	VFMADD231PS Z3, Z3, Z0
	ADDQ        $64, AX
	DECQ        CX
	JZ          lnfVarDone
	VMOVUPS     (AX), Z4
	VSUBPS      Z2, Z4, Z4
	VFMADD231PS Z4, Z4, Z1
	ADDQ        $64, AX
	DECQ        CX
	JNZ         lnfVar

lnfVarDone:
	VADDPS       Z1, Z0, Z0
	HSUM512(Z0, Y0, X0, Y1, X1)
	VDIVSS       X14, X0, X0
	VADDSS       X15, X0, X0
	VSQRTSS      X0, X0, X0
	VDIVSS       X0, X13, X0
	VMOVSS       X0, (R9)
	VBROADCASTSS X0, Z5

	// out = (x−m)·s·w (+ b)
	MOVQ  SI, AX
	MOVQ  BX, R12
	MOVQ  DX, R13
	MOVQ  R11, CX
	SHRQ  $4, CX
	TESTQ DX, DX
	JZ    lnfNoBias

lnfAffine:
	VMOVUPS (AX), Z3
	VSUBPS  Z2, Z3, Z3
	VMULPS  Z5, Z3, Z3
	VMULPS  (R12), Z3, Z3
	VADDPS  (R13), Z3, Z3
	VMOVUPS Z3, (DI)
	ADDQ    $64, AX
	ADDQ    $64, R12
	ADDQ    $64, R13
	ADDQ    $64, DI
	DECQ    CX
	JNZ     lnfAffine
	JMP     lnfNext

lnfNoBias:
	VMOVUPS (AX), Z3
	VSUBPS  Z2, Z3, Z3
	VMULPS  Z5, Z3, Z3
	VMULPS  (R12), Z3, Z3
	VMOVUPS Z3, (DI)
	ADDQ    $64, AX
	ADDQ    $64, R12
	ADDQ    $64, DI
	DECQ    CX
	JNZ     lnfNoBias

lnfNext:
	MOVQ AX, SI
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ R10
	JNZ  lnfRow

lnfDone:
	VZEROUPPER
	RET

// func lnBackwardAVX512(dinp, dw, db, dout, x, w, mean, rstd *float32, rows, c int)
// LayerNorm backward of rows rows of c floats (c a multiple of 16), with
// norm = (x−m)·s: per row s1 = Σ g·w, s2 = Σ g·w·norm (g = dout), then
// dw += norm·g, db += g (db may be nil), dinp += (g·w − s1/c − norm·s2/c)·s.
// The same element operations as lnGradSumsAVX2 and lnGradApplyAVX2, with
// two accumulators per sum.
TEXT ·lnBackwardAVX512(SB), NOSPLIT, $0-80
	MOVQ      dinp+0(FP), DI
	MOVQ      dout+24(FP), DX
	MOVQ      x+32(FP), SI
	MOVQ      mean+48(FP), R8
	MOVQ      rstd+56(FP), R9
	MOVQ      rows+64(FP), R10
	MOVQ      c+72(FP), R11
	VCVTSI2SSQ R11, X14, X14
	MOVL      $0x3f800000, AX
	VMOVD     AX, X13
	VDIVSS    X14, X13, X13 // 1/c
	TESTQ     R10, R10
	JZ        lnbDone

lnbRow:
	VBROADCASTSS (R8), Z8
	VBROADCASTSS (R9), Z9
	// s1 = Σ g·w, s2 = Σ g·w·(x−m)·s
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VPXORD Z6, Z6, Z6
	VPXORD Z7, Z7, Z7
	MOVQ   DX, AX
	MOVQ   SI, R12
	MOVQ   w+40(FP), BX
	MOVQ   R11, CX
	SHRQ   $4, CX

lnbSums:
	VMOVUPS     (AX), Z2
	VMULPS      (BX), Z2, Z2
	VADDPS      Z2, Z0, Z0
	VMOVUPS     (R12), Z3
	VSUBPS      Z8, Z3, Z3
	VMULPS      Z9, Z3, Z3
	VFMADD231PS Z3, Z2, Z1
	ADDQ        $64, AX
	ADDQ        $64, BX
	ADDQ        $64, R12
	DECQ        CX
	JZ          lnbSumsDone
	VMOVUPS     (AX), Z2
	VMULPS      (BX), Z2, Z2
	VADDPS      Z2, Z6, Z6
	VMOVUPS     (R12), Z3
	VSUBPS      Z8, Z3, Z3
	VMULPS      Z9, Z3, Z3
	VFMADD231PS Z3, Z2, Z7
	ADDQ        $64, AX
	ADDQ        $64, BX
	ADDQ        $64, R12
	DECQ        CX
	JNZ         lnbSums

lnbSumsDone:
	VADDPS       Z6, Z0, Z0
	VADDPS       Z7, Z1, Z1
	HSUM512(Z0, Y0, X0, Y2, X2)
	HSUM512(Z1, Y1, X1, Y2, X2)
	VMULSS       X13, X0, X0
	VMULSS       X13, X1, X1
	VBROADCASTSS X0, Z10 // c1
	VBROADCASTSS X1, Z11 // c2

	// dw += norm·g; db += g; dinp += (g·w − c1 − norm·c2)·s
	MOVQ dw+8(FP), R13
	MOVQ db+16(FP), R14
	MOVQ w+40(FP), BX
	MOVQ R11, CX
	SHRQ $4, CX

lnbApply:
	VMOVUPS      (SI), Z0
	VSUBPS       Z8, Z0, Z0
	VMULPS       Z9, Z0, Z0
	VMOVUPS      (DX), Z1
	VMOVUPS      (R13), Z2
	VFMADD231PS  Z1, Z0, Z2
	VMOVUPS      Z2, (R13)
	TESTQ        R14, R14
	JZ           lnbNoBias
	VADDPS       (R14), Z1, Z3
	VMOVUPS      Z3, (R14)
	ADDQ         $64, R14

lnbNoBias:
	VMULPS       (BX), Z1, Z1
	VSUBPS       Z10, Z1, Z1
	VFNMADD231PS Z11, Z0, Z1
	VMOVUPS      (DI), Z2
	VFMADD231PS  Z9, Z1, Z2
	VMOVUPS      Z2, (DI)
	ADDQ         $64, SI
	ADDQ         $64, DX
	ADDQ         $64, R13
	ADDQ         $64, BX
	ADDQ         $64, DI
	DECQ         CX
	JNZ          lnbApply
	ADDQ         $4, R8
	ADDQ         $4, R9
	DECQ         R10
	JNZ          lnbRow

lnbDone:
	VZEROUPPER
	RET

// func softmaxRowsAVX512(x *float32, ld, rows, n0, step int)
// For r < rows, row r of x (ld floats, row stride ld): softmax over its
// first n = min(n0 + r·step, ld) entries (max, exp-sum, scale, with masked
// loads and stores for the last partial vector), zeros in [n, ld). n = 0
// gives a row of zeros. One call for a whole block of attention rows.
TEXT ·softmaxRowsAVX512(SB), NOSPLIT, $0-40
	MOVQ   x+0(FP), DI
	MOVQ   ld+8(FP), R12
	MOVQ   rows+16(FP), R9
	MOVQ   n0+24(FP), R10
	MOVQ   step+32(FP), R11
	MOVQ   R12, R8
	SHLQ   $2, R8
	VPXORD Z15, Z15, Z15
	MOVL   $0x3f800000, AX
	VMOVD  AX, X14
	TESTQ  R9, R9
	JZ     srDone

srRow:
	MOVQ  R10, R13
	CMPQ  R13, R12
	JLE   srN
	MOVQ  R12, R13

srN:
	TESTQ R13, R13
	JZ    srZero
	MOVQ  R13, CX
	ANDQ  $15, CX
	MOVQ  R13, BX
	SHRQ  $4, BX
	MOVL  $1, AX
	SHLL  CX, AX
	DECL  AX
	KMOVW AX, K1

	// max
	VBROADCASTSS NEGINF, Z0
	MOVQ         DI, SI
	MOVQ         BX, DX
	TESTQ        DX, DX
	JZ           srMaxTail

srMax:
	VMAXPS (SI), Z0, Z0
	ADDQ   $64, SI
	DECQ   DX
	JNZ    srMax

srMaxTail:
	TESTQ        CX, CX
	JZ           srMaxDone
	VMAXPS       (SI), Z0, K1, Z0

srMaxDone:
	VEXTRACTF64X4 $1, Z0, Y1
	VMAXPS        Y1, Y0, Y0
	VEXTRACTF128  $1, Y0, X1
	VMAXPS        X1, X0, X0
	VMOVHLPS      X0, X0, X1
	VMAXPS        X1, X0, X0
	VMOVSHDUP     X0, X1
	VMAXSS        X1, X0, X0
	VBROADCASTSS  X0, Z10

	// exp and sum
	VPXORD Z11, Z11, Z11
	MOVQ   DI, SI
	MOVQ   BX, DX
	TESTQ  DX, DX
	JZ     srExpTail

srExp:
	VMOVUPS (SI), Z3
	VSUBPS  Z10, Z3, Z3
	EXP512(Z3, Z4, Z5)
	VMOVUPS Z3, (SI)
	VADDPS  Z3, Z11, Z11
	ADDQ    $64, SI
	DECQ    DX
	JNZ     srExp

srExpTail:
	TESTQ   CX, CX
	JZ      srExpDone
	VMOVUPS.Z (SI), K1, Z3
	VSUBPS  Z10, Z3, Z3
	EXP512(Z3, Z4, Z5)
	VMOVUPS Z3, K1, (SI)
	VADDPS  Z3, Z11, K1, Z11

srExpDone:
	HSUM512(Z11, Y11, X11, Y12, X12)
	VDIVSS       X11, X14, X13
	VBROADCASTSS X13, Z13

	// scale
	MOVQ  DI, SI
	MOVQ  BX, DX
	TESTQ DX, DX
	JZ    srScaleTail

srScale:
	VMULPS  (SI), Z13, Z3
	VMOVUPS Z3, (SI)
	ADDQ    $64, SI
	DECQ    DX
	JNZ     srScale

srScaleTail:
	TESTQ     CX, CX
	JZ        srZero
	VMOVUPS.Z (SI), K1, Z3
	VMULPS    Z13, Z3, Z3
	VMOVUPS   Z3, K1, (SI)

srZero:
	// zeros in [n, ld)
	LEAQ (DI)(R13*4), SI
	MOVQ R12, DX
	SUBQ R13, DX
	MOVQ DX, CX
	ANDQ $15, CX
	SHRQ $4, DX
	JZ   srZeroTail

srZeroFull:
	VMOVUPS Z15, (SI)
	ADDQ    $64, SI
	DECQ    DX
	JNZ     srZeroFull

srZeroTail:
	TESTQ   CX, CX
	JZ      srNext
	MOVL    $1, AX
	SHLL    CX, AX
	DECL    AX
	KMOVW   AX, K2
	VMOVUPS Z15, K2, (SI)

srNext:
	ADDQ R8, DI
	ADDQ R11, R10
	DECQ R9
	JNZ  srRow

srDone:
	VZEROUPPER
	RET
