/-- Doubling by recursion. -/
def double : Nat → Nat
  | 0 => 0
  | n + 1 => double n + 2

/-- Doubling equals adding a number to itself. -/
theorem double_eq_add (n : Nat) : double n = n + n := by rfl
