/-- 0 + 1 + ... + n, by recursion. -/
def sumTo : Nat → Nat
  | 0 => 0
  | n + 1 => (n + 1) + sumTo n

/-- Gauss's closed form, without division. -/
theorem sumTo_closed (n : Nat) : 2 * sumTo n = n * (n + 1) :=
