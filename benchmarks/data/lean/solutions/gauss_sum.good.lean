/-- 0 + 1 + ... + n, by recursion. -/
def sumTo : Nat → Nat
  | 0 => 0
  | n + 1 => (n + 1) + sumTo n

/-- Gauss's closed form, without division. -/
theorem sumTo_closed (n : Nat) : 2 * sumTo n = n * (n + 1) := by
  induction n with
  | zero => rfl
  | succ k ih =>
    have step : sumTo (k + 1) = k + 1 + sumTo k := rfl
    have square : (k + 1) * (k + 1 + 1) = k * (k + 1) + 2 * (k + 1) := by
      simp only [Nat.add_mul, Nat.mul_add, Nat.mul_one, Nat.one_mul] <;> omega
    omega
