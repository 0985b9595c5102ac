Require Import Lia.

(** 0 + 1 + ... + n, by recursion. *)
Fixpoint sum_to (n : nat) : nat :=
  match n with
  | O => O
  | S k => S k + sum_to k
  end.

(** Gauss's closed form, without division. *)
Theorem sum_to_closed : forall n : nat, 2 * sum_to n = n * (n + 1).
Proof.
  induction n as [| k IH].
  - reflexivity.
  - simpl sum_to. nia.
Qed.
