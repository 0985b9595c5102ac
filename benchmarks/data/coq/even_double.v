(** Parity by peeling off two at a time. *)
Fixpoint evenb (n : nat) : bool :=
  match n with
  | O => true
  | S O => false
  | S (S k) => evenb k
  end.

Fixpoint double (n : nat) : nat :=
  match n with
  | O => O
  | S k => S (S (double k))
  end.

(** Every doubled number is even. *)
Theorem double_even : forall n : nat, evenb (double n) = true.
