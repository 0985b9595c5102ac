/-- The length of a concatenation is the sum of the lengths. -/
theorem length_append' (a b : List Nat) : (a ++ b).length = a.length + b.length := by
  induction a with
  | nil => simp
  | cons x t ih => simp [ih] <;> omega
