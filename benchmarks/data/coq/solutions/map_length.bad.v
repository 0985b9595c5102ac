Require Import List.
Import ListNotations.

(** Mapping a function over a list keeps its length. *)
Theorem map_keeps_length : forall (f : nat -> nat) (l : list nat), length (map f l) = length l.
Proof.
  intros f l. destruct l; reflexivity.
Qed.
