Require Import Arith Lia.

(** The maximum, by comparison, bounds both arguments. *)
Definition max_of (a b : nat) : nat := if Nat.leb a b then b else a.

Theorem max_of_upper : forall a b : nat, a <= max_of a b /\ b <= max_of a b.
Proof.
  intros a b. unfold max_of. split; apply le_n.
Qed.
