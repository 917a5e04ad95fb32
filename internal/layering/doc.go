// Package layering holds no code: its tests pin the rules of the module's
// layout that the compiler does not check (DESIGN.md, "Packages"): which
// rooms may import which, and that no package makes a process-wide kernel
// choice.
package layering
