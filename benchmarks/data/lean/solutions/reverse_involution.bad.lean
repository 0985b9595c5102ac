/-- List reversal, written out. -/
def reverse : List Nat → List Nat
  | [] => []
  | x :: t => reverse t ++ [x]

/-- Reversing twice gives back the list. -/
theorem reverse_involutive (l : List Nat) : reverse (reverse l) = l := by
  induction l with
  | nil => rfl
  | cons x t ih => simp [reverse, ih]
