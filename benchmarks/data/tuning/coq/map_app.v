Require Import List.
Import ListNotations.

(** Mapping over a concatenation maps each part. *)
Theorem map_app_distr : forall (f : nat -> nat) (a b : list nat), map f (a ++ b) = map f a ++ map f b.
