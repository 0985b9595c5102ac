/-- Appending the empty list on the right changes nothing. -/
theorem append_nil' (l : List Nat) : l ++ [] = l := by
  induction l with
  | nil => rfl
  | cons x t ih => simp
